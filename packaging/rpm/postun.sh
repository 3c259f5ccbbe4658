# %postun
if [ -d /run/systemd/system ]; then
    /usr/bin/systemctl daemon-reload >/dev/null 2>&1 || :
fi
# On upgrade, restart the running instances with the new binary
# (%systemd_postun_with_restart, for the instances of the template).
if [ "$1" -ge 1 ]; then
    if [ -d /run/systemd/system ]; then
        /usr/bin/systemctl try-restart 'rwsgi@*.service' >/dev/null 2>&1 || :
    else
        /sbin/service rwsgi condrestart >/dev/null 2>&1 || :
    fi
fi
exit 0
