#!/bin/sh
# bench-postfix-setup.sh: the Postfix every bench load measures Posthorn
# against, as an instance of its own (called by the bench scripts; needs
# root).
#
# "up DIR [PORT]" makes and starts a Postfix that owns nothing outside DIR:
#   DIR/conf/main.cf, master.cf   its configuration directory (postfix -c)
#   DIR/queue/                    its queue_directory
#   DIR/data/                     its data_directory
#   DIR/postfix.log               its log (maillog_file, through postlogd)
#   DIR/home/                     the home of the test user phbench-pf:
#                                 mail for phbench-pf@bench.test goes to
#                                 DIR/home/Maildir/ (local(8), home_mailbox)
# Loopback only: inet_interfaces = 127.0.0.1, and the one inet service in
# its master.cf is smtpd on 127.0.0.1:PORT (11925 by default); no port 25,
# no chroot (the queue directory is not a prepared chroot). Everything
# else keeps Postfix's defaults, fsyncs included. The bench talks to it
# with -c DIR/conf (postfix, postconf, postqueue, postsuper) and
# /usr/sbin/sendmail -C DIR/conf.
# "down DIR" stops that instance and every process it started, and waits
# until they are gone. "up" on a DIR already running stops it first.
#
# The machine's own Postfix is left alone: /etc/postfix is never written,
# the system instance is never started, stopped or reloaded, and its
# queue is never touched. If Postfix is not installed, it is installed
# through scripts/bench-install.sh (no service started or enabled).
#
# Usage: sh scripts/bench-postfix-setup.sh up DIR [PORT]
#        sh scripts/bench-postfix-setup.sh down DIR
set -eu
# Postfix's own commands only: a Posthorn "make install" puts its sendmail,
# newaliases and mailq in /usr/local/sbin, ahead of /usr/sbin in root's PATH.
PATH=/usr/sbin:/usr/bin:/sbin:/bin
export PATH

usage="usage: bench-postfix-setup.sh up DIR [PORT] | down DIR"
cmd=${1:?$usage}
dir=${2:?$usage}
port=${3:-11925}
domain=bench.test
user=phbench-pf
top=$(cd "$(dirname "$0")/.." && pwd)

say() { printf '%s\n' "postfix: $*" >&2; }
[ "$(id -u)" = 0 ] || { say "must run as root (it runs a Postfix instance)"; exit 1; }
case $dir in /*) ;; *) dir="$(pwd)/$dir" ;; esac
. "$top/scripts/bench-lib.sh"
conf="$dir/conf"

# ours PID - PID is a process of this instance: Postfix's master passes
# MAIL_CONFIG to every program it runs.
ours() {
    grep -qzxF "MAIL_CONFIG=$conf" "/proc/$1/environ" 2>/dev/null
}

# down - stop the instance run from $conf, if any, and wait (bounded)
# until its master and every process it started have exited.
down() {
    master=$(tr -dc 0-9 2>/dev/null < "$dir/queue/pid/master.pid" || true)
    procs=
    if [ -n "$master" ] && ours "$master"; then
        procs=$(tree "$master")
        postfix -c "$conf" stop >/dev/null 2>&1 || kill "$master" 2>/dev/null || true
    fi
    # Anything else that runs with this configuration (a master started by
    # hand, strace'd daemons, a postdrop left behind) goes too.
    for f in $(grep -lzxF "MAIL_CONFIG=$conf" /proc/[0-9]*/environ 2>/dev/null); do
        p=${f#/proc/}; p=${p%/environ}
        st=$(cut -d' ' -f22 "/proc/$p/stat" 2>/dev/null) && procs="$procs $p:$st"
    done
    [ -n "$procs" ] || return 0
    # shellcheck disable=SC2086
    wait_gone $procs || { say "the instance in $dir did not stop"; return 1; }
    say "stopped the instance in $dir"
}

case $cmd in
    down) down; exit 0 ;;
    up) ;;
    *) echo "$usage" >&2; exit 2 ;;
esac

# 1. Postfix's programs, installed without touching any service.
[ -x /usr/sbin/postfix ] && [ -x /usr/sbin/sendmail ] && [ -x /usr/lib/postfix/sbin/master ] ||
    sh "$top/scripts/bench-install.sh" postfix

# 2. A fresh instance: stop one left running from DIR, start from nothing.
down
rm -rf "$conf" "$dir/queue" "$dir/data" "$dir/postfix.log"
mkdir -p "$conf" "$dir/queue" "$dir/data" "$dir/home"
chmod 755 "$dir" "$conf"
chown postfix "$dir/data"

# 3. The test user, as a system account with no login; its home is here.
if ! id "$user" >/dev/null 2>&1; then
    useradd --system --no-create-home --home-dir "$dir/home" --shell /usr/sbin/nologin \
        --comment "posthorn make bench, Postfix recipient" "$user"
elif [ "$(getent passwd "$user" | cut -d: -f6)" != "$dir/home" ]; then
    usermod --home "$dir/home" "$user"
fi
chown "$user:" "$dir/home"

# 4. main.cf: the instance's own directories, loopback only, Maildir
#    delivery for the bench domain, nothing from /etc/postfix.
cat > "$conf/main.cf" <<CONF
# Written by scripts/bench-postfix-setup.sh: a bench-only Postfix instance.
compatibility_level = 3.6
queue_directory = $dir/queue
data_directory = $dir/data
syslog_name = postfix-bench
maillog_file = $dir/postfix.log
maillog_file_prefixes = $dir
myhostname = $domain
mydomain = $domain
myorigin = $domain
mydestination = $domain, localhost.$domain, localhost
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
relayhost =
alias_maps =
alias_database =
home_mailbox = Maildir/
mailbox_command =
biff = no
CONF

# 5. master.cf: Postfix's standard services, without chroot, and smtpd on
#    the instance's own port.
cat > "$conf/master.cf" <<CONF
# Written by scripts/bench-postfix-setup.sh: Debian's master.cf services,
# chroot off, smtpd on 127.0.0.1:$port only.
127.0.0.1:$port inet n - n - - smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
virtual   unix  -       n       n       -       -       virtual
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
CONF

# 6. Check (this also makes the queue's directories, owned as Postfix
#    wants them) and start; wait (bounded) for the master and the port.
if ! out=$(postfix -c "$conf" check 2>&1); then
    say "postfix -c $conf check failed: $out"
    tail -n 20 "$dir/postfix.log" >&2 2>/dev/null || true
    exit 1
fi
postfix -c "$conf" start >/dev/null 2>&1 || true
i=0
until postfix -c "$conf" status >/dev/null 2>&1 && ss -Hltn "sport = :$port" | grep -q .; do
    i=$((i + 1))
    if [ $i -ge 100 ]; then
        say "did not start; see $dir/postfix.log"
        tail -n 20 "$dir/postfix.log" >&2 2>/dev/null || true
        exit 1
    fi
    sleep 0.1
done
say "running from $conf, smtpd on 127.0.0.1:$port, mail for $user@$domain to $dir/home/Maildir/"
