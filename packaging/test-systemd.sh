#!/bin/bash
# Part of packaging/test.sh: runs inside the test root booted with
# systemd-nspawn (as /usr/local/sbin/rwsgi-selftest, from a oneshot unit),
# writes one PASS/FAIL line per check to /root/rwsgi-selftest.result, then
# powers the container off. Expects /root/rwsgi.deb, /root/rwsgi-selftest.port,
# /srv/hello/get_started.py and /etc/rwsgi/{hello,tcp,broken}.toml.
# The `bash -c '...' _ ARGS` checks quote their scripts on purpose.
# shellcheck disable=SC2016
exec >/root/rwsgi-selftest.log 2>&1
set -x
R=/root/rwsgi-selftest.result
: >"$R"
PORT=$(cat /root/rwsgi-selftest.port)

t() {
    local name=$1
    shift
    if "$@"; then echo "PASS $name" >>"$R"; else echo "FAIL $name" >>"$R"; fi
}
wait_for() {
    local tries=$(($1 * 2))
    shift
    until "$@"; do
        tries=$((tries - 1))
        [ "$tries" -gt 0 ] || return 1
        sleep 0.5
    done
}
mainpid() { systemctl show -P MainPID "$1"; }
workers() { pgrep -P "$1" -f '^rwsgi: worker' | sort -n | tr '\n' ' '; }
active() { systemctl is-active --quiet "$1"; }
hello_unix() { [ "$(curl -sS --max-time 10 --unix-socket /run/rwsgi/hello.sock http://localhost/)" = "Hello world!" ]; }
hello_tcp() { [ "$(curl -sS --max-time 10 "http://127.0.0.1:$PORT/")" = "Hello world!" ]; }
runs_as_rwsgi() { [ "$(ps -o user= -p "$(mainpid "$1")")" = rwsgi ]; }

t "dpkg -i under a running systemd" dpkg -i /root/rwsgi.deb
t "postinst enabled and started rwsgi.service" \
    bash -c 'systemctl is-active --quiet rwsgi.service && systemctl is-enabled --quiet rwsgi.service'

# Socket activation: systemd holds /run/rwsgi/hello.sock.
t "systemctl enable --now rwsgi@hello.socket" systemctl enable --now rwsgi@hello.socket
t "systemd listens on /run/rwsgi/hello.sock" test -S /run/rwsgi/hello.sock
t "a connection starts rwsgi@hello.service: Hello world!" hello_unix
t "rwsgi@hello.service becomes active (Type=notify, READY=1)" wait_for 30 active rwsgi@hello.service
t "rwsgi@hello runs as the rwsgi user" runs_as_rwsgi rwsgi@hello.service
t "rwsgi@hello serves the socket systemd passed (journal)" \
    bash -c 'journalctl -u rwsgi@hello.service | grep -q "sockets passed by systemd"'
M=$(mainpid rwsgi@hello.service)
t "the hardened unit leaves rwsgi what it needs: process title, no EPERM" bash -c \
    '[ "$(ps -o comm= -p "$1")" = "rwsgi: master" ] && ! journalctl -u rwsgi@hello.service | grep -Ei "not permitted|\[(error|critical)\]"' _ "$M"
OLD=$(workers "$M")
reloaded() {
    local now w
    [ "$(mainpid rwsgi@hello.service)" = "$M" ] || return 1
    now=$(workers "$M")
    [ -n "$now" ] || return 1
    for w in $OLD; do
        case " $now " in *" $w "*) return 1 ;; esac
    done
}
t "systemctl reload rwsgi@hello (ExecReload: HUP)" systemctl reload rwsgi@hello.service
t "reload: new workers, same MainPID" wait_for 30 reloaded
t "reload: still serving" hello_unix
INODE=$(stat -c %i /run/rwsgi/hello.sock)
t "systemctl restart rwsgi@hello" systemctl restart rwsgi@hello.service
t "restart: the socket stays open (same inode)" bash -c '[ "$(stat -c %i /run/rwsgi/hello.sock)" = "$1" ]' _ "$INODE"
t "restart: still serving" hello_unix

# An instance that binds its own address and logs to a file.
t "systemctl start rwsgi@tcp (binds 127.0.0.1:$PORT itself)" systemctl start rwsgi@tcp.service
t "rwsgi@tcp serves http://127.0.0.1:$PORT/" hello_tcp
t "rwsgi writes /var/log/rwsgi/tcp.log; the directory stays rwsgi:adm 2750" bash -c \
    '[ "$(stat -c %U /var/log/rwsgi/tcp.log)" = rwsgi ] && [ "$(stat -c "%U:%G %a" /var/log/rwsgi)" = "rwsgi:adm 2750" ]'
mv /var/log/rwsgi/tcp.log /var/log/rwsgi/tcp.log.1
t "logrotate's postrotate: systemctl kill --kill-whom=main --signal=USR1 'rwsgi@*.service'" \
    systemctl kill --kill-whom=main --signal=USR1 'rwsgi@*.service'
t "USR1: rwsgi@tcp reopened /var/log/rwsgi/tcp.log" wait_for 10 test -e /var/log/rwsgi/tcp.log
t "no error in the logs of rwsgi@hello and rwsgi@tcp" bash -c \
    '! journalctl -u rwsgi@hello.service -u rwsgi@tcp.service | grep -Ei "not permitted|\[(error|critical)\]" && ! grep -Ei "not permitted|\[(error|critical)\]" /var/log/rwsgi/tcp.log*'
t "USR1 did not stop any instance" bash -c 'sleep 1; systemctl is-active --quiet rwsgi@tcp.service && systemctl is-active --quiet rwsgi@hello.service'

# The umbrella unit.
T=$(mainpid rwsgi@tcp.service)
restarted() { local now; now=$(mainpid rwsgi@tcp.service); [ "$now" != 0 ] && [ "$now" != "$T" ]; }
# systemctl returns once the umbrella's own job is done; the instances'
# restarts, propagated by PartOf=, may still be under way.
restart_all() { systemctl restart rwsgi.service && wait_for 30 restarted; }
t "systemctl restart rwsgi.service restarts every instance" restart_all
t "...which come back up" wait_for 30 active rwsgi@tcp.service
t "systemctl stop rwsgi.service stops every instance" \
    bash -c 'systemctl stop rwsgi.service && ! systemctl is-active --quiet rwsgi@tcp.service && ! systemctl is-active --quiet rwsgi@hello.service'
t "the socket unit keeps listening" active rwsgi@hello.socket

# Failures.
t "rwsgi@broken (the app cannot be imported) fails to start" bash -c '! systemctl start rwsgi@broken.service'
t "...exit status 4, failed, not restarted (RestartPreventExitStatus=4)" bash -c \
    'sleep 3; [ "$(systemctl show -P ExecMainStatus rwsgi@broken.service)" = 4 ] && [ "$(systemctl show -P ActiveState rwsgi@broken.service)" = failed ] && [ "$(systemctl show -P NRestarts rwsgi@broken.service)" = 0 ]'
t "rwsgi@missing (no /etc/rwsgi/missing.toml) fails to start" bash -c '! systemctl start rwsgi@missing.service'

# Removal under systemd.
systemctl start rwsgi@tcp.service rwsgi@hello.service
t "before removal: the instances run again" \
    bash -c 'systemctl is-active --quiet rwsgi@tcp.service && systemctl is-active --quiet rwsgi@hello.service'
t "dpkg --purge rwsgi under systemd" dpkg --purge rwsgi
t "purge: every instance and socket stopped, no rwsgi process" bash -c \
    '! systemctl is-active --quiet rwsgi@hello.socket && ! systemctl is-active --quiet rwsgi@hello.service && ! systemctl is-active --quiet rwsgi@tcp.service && ! pgrep -u rwsgi'
t "purge: /run/rwsgi gone" test ! -e /run/rwsgi
echo DONE >>"$R"
systemctl start --no-block --job-mode=replace-irreversibly poweroff.target
