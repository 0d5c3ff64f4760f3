#!/bin/sh
# bench-dovecot-setup.sh: a loopback-only Dovecot POP3 server to measure
# pop3d against, as an instance of its own (called by scripts/bench-pop3.sh;
# needs root).
#
# "up DIR PORT HOME" starts a Dovecot from DIR/dovecot.conf, a file that
# includes nothing of /etc/dovecot and names nothing outside DIR but HOME:
# base_dir DIR/run (its sockets and master.pid), state_dir DIR/state, its
# log DIR/dovecot.log, plaintext POP3 on 127.0.0.1:PORT only (ssl = no,
# disable_plaintext_auth = no, no other listener), one passwd-file user
# `bench` (password `pw`, in DIR/users) running as the system user
# phbench-dc, whose mail is maildir:HOME/Maildir. Nothing else of
# Dovecot's defaults is changed, except that RETR does not set the Seen
# flag (pop3_no_flag_updates), as pop3d runs --no-flag-updates in the
# bench: each round must find the Maildir as the last one left it.
# "down DIR" stops that Dovecot and every process it started, and waits
# until they are gone. "up" on a DIR already running stops it first.
#
# The machine's own Dovecot is left alone: /etc/dovecot is never written,
# the system instance (base_dir /run/dovecot) is never started, stopped or
# reloaded. If Dovecot is not installed, dovecot-core and dovecot-pop3d
# are installed through scripts/bench-install.sh (no service started or
# enabled).
#
# Usage: sh scripts/bench-dovecot-setup.sh up DIR PORT HOME
#        sh scripts/bench-dovecot-setup.sh down DIR
set -eu
PATH=/usr/sbin:/usr/bin:/sbin:/bin
export PATH

usage="usage: bench-dovecot-setup.sh up DIR PORT HOME | down DIR"
cmd=${1:?$usage}
dir=${2:?$usage}
user=phbench-dc
top=$(cd "$(dirname "$0")/.." && pwd)

say() { printf '%s\n' "dovecot: $*" >&2; }
[ "$(id -u)" = 0 ] || { say "must run as root (it runs a Dovecot instance)"; exit 1; }
case $dir in /*) ;; *) dir="$(pwd)/$dir" ;; esac
. "$top/scripts/bench-lib.sh"
conf="$dir/dovecot.conf"

# down - stop the Dovecot started from $conf, if any, and wait (bounded)
# until its master and every process it started have exited.
down() {
    pid=$(tr -dc 0-9 2>/dev/null < "$dir/run/master.pid" || true)
    [ -n "$pid" ] || return 0
    # The pid file may be stale: only a dovecot started with -c $conf is ours.
    if [ "$(tr '\0' ' ' 2>/dev/null < "/proc/$pid/cmdline")" != "/usr/sbin/dovecot -c $conf " ] &&
        [ "$(tr '\0' ' ' 2>/dev/null < "/proc/$pid/cmdline")" != "dovecot -c $conf " ]; then
        rm -f "$dir/run/master.pid"
        return 0
    fi
    # Its children (auth, pop3, log ...) leave with it; any that would
    # not, having lost their parent, are ended by pid.
    procs=$(tree "$pid")
    kill "$pid" 2>/dev/null || true
    # shellcheck disable=SC2086
    wait_gone $procs || { say "the instance in $dir did not stop"; return 1; }
    rm -f "$dir/run/master.pid"
    say "stopped the instance in $dir (master $pid)"
}

case $cmd in
    down) down; exit 0 ;;
    up) ;;
    *) echo "$usage" >&2; exit 2 ;;
esac
port=${3:?$usage}
home=${4:?$usage}

# 1. Dovecot's programs, installed without touching any service.
[ -x /usr/sbin/dovecot ] && [ -x /usr/lib/dovecot/pop3 ] ||
    sh "$top/scripts/bench-install.sh" dovecot-core dovecot-pop3d
say "$(dovecot --version)"

# 2. The test user the mail processes run as: a system account, no home,
#    no login.
if ! id "$user" >/dev/null 2>&1; then
    useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin \
        --comment "posthorn make bench, Dovecot mail user" "$user"
fi
uid=$(id -u "$user")
gid=$(id -g "$user")

# 3. The configuration: this file alone (no conf.d), everything under DIR.
down
rm -rf "$dir/run" "$dir/state"
mkdir -p "$dir/run" "$dir/state"
echo "bench:{PLAIN}pw:$uid:$gid::$home::" > "$dir/users"
chgrp dovecot "$dir/users"; chmod 640 "$dir/users"
cat > "$conf" <<CONF
# Written by scripts/bench-dovecot-setup.sh: a bench-only Dovecot.
protocols = pop3
listen = 127.0.0.1
base_dir = $dir/run
state_dir = $dir/state
log_path = $dir/dovecot.log
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
first_valid_uid = $uid
last_valid_uid = $uid
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%u $dir/users
}
userdb {
  driver = passwd-file
  args = username_format=%u $dir/users
}
mail_location = maildir:~/Maildir
pop3_no_flag_updates = yes
service pop3-login {
  inet_listener pop3 {
    address = 127.0.0.1
    port = $port
  }
  inet_listener pop3s {
    port = 0
  }
}
service imap-login {
  inet_listener imap {
    port = 0
  }
  inet_listener imaps {
    port = 0
  }
}
service submission-login {
  inet_listener submission {
    port = 0
  }
}
CONF
doveconf -c "$conf" -n >/dev/null

# 4. Start it and wait (bounded) for the listener.
# Its messages before the log process is up go to the same log; it gets
# none of our caller's pipes (it would keep them open).
dovecot -c "$conf" </dev/null >/dev/null 2>>"$dir/dovecot.log"
i=0
until ss -Hltn "sport = :$port" | grep -q .; do
    i=$((i + 1))
    if [ $i -ge 50 ]; then
        say "did not start; see $dir/dovecot.log"
        tail -n 20 "$dir/dovecot.log" >&2 2>/dev/null || true
        exit 1
    fi
    sleep 0.1
done
say "running from $conf on 127.0.0.1:$port, user bench (as $user) on $home/Maildir"
