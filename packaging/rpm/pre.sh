# %pre: the system user the servers run as (Fedora's "dynamic allocation"
# recipe). It is kept on erase: files it owns may still exist.
getent group rwsgi >/dev/null || groupadd -r rwsgi
getent passwd rwsgi >/dev/null || \
    useradd -r -g rwsgi -d / -s /sbin/nologin -c "rwsgi WSGI server" rwsgi
exit 0
