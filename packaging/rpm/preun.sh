# %preun: on erase (not upgrade), stop every instance and unregister.
if [ "$1" -eq 0 ]; then
    if [ -d /run/systemd/system ]; then
        /usr/bin/systemctl stop 'rwsgi@*.socket' 'rwsgi@*.service' >/dev/null 2>&1 || :
        /usr/bin/systemctl --no-reload disable --now rwsgi.service >/dev/null 2>&1 || :
    else
        /sbin/service rwsgi stop >/dev/null 2>&1 || :
        if [ -x /sbin/chkconfig ]; then
            /sbin/chkconfig --del rwsgi >/dev/null 2>&1 || :
        fi
    fi
fi
exit 0
