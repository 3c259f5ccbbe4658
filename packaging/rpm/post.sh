# %post
# Log directory for the SysV instances and any log a config file puts
# there (cargo-generate-rpm cannot package an empty directory). Left in
# place on erase, with the logs in it.
if [ ! -d /var/log/rwsgi ]; then
    install -d -o rwsgi -g rwsgi -m 0750 /var/log/rwsgi
fi
# %systemd_post rwsgi.service: enable the umbrella unit per the presets on
# first install. The rwsgi@ templates are never enabled by the package.
if [ "$1" -eq 1 ] && [ -x /usr/bin/systemctl ]; then
    /usr/bin/systemctl --no-reload preset rwsgi.service >/dev/null 2>&1 || :
fi
# The SysV init script, on systems that do not run systemd.
if [ -x /sbin/chkconfig ] && [ ! -d /run/systemd/system ]; then
    /sbin/chkconfig --add rwsgi >/dev/null 2>&1 || :
fi
exit 0
