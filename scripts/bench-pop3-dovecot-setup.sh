#!/bin/sh
# bench-pop3-dovecot-setup.sh: a loopback-only Dovecot POP3 server to
# measure pop3d against (called by scripts/bench-pop3.sh; needs root).
#
# Installs dovecot-core and dovecot-pop3d from Debian unless they are there
# (without starting Debian's own Dovecot service), creates the test user
# benchdc, and starts a Dovecot of its own, from a configuration file in
# DIR that owns nothing outside DIR: plaintext POP3 on 127.0.0.1:PORT only
# (ssl = no, disable_plaintext_auth = no), one passwd-file user `bench`
# (password `pw`) running as benchdc, whose mail is maildir:HOME/Maildir.
# Nothing else of Dovecot's defaults is changed, except that RETR does not
# set the Seen flag (pop3_no_flag_updates), as pop3d runs --no-flag-updates
# in the bench: each round must find the Maildir as the last one left it.
# Safe to run again: a Dovecot already running from DIR is stopped first.
#
# Usage: sh scripts/bench-pop3-dovecot-setup.sh DIR PORT HOME
#        sh scripts/bench-pop3-dovecot-setup.sh DIR stop
set -eu
PATH=/usr/sbin:/usr/bin:/sbin:/bin
export PATH

dir=${1:?usage: bench-pop3-dovecot-setup.sh DIR PORT HOME}
port=${2:?usage: bench-pop3-dovecot-setup.sh DIR PORT HOME}
user=benchdc
conf="$dir/dovecot.conf"

if [ "$(id -u)" != 0 ]; then
    echo "bench-pop3-dovecot-setup: must run as root (installs and starts Dovecot)" >&2
    exit 1
fi

# stop - stop the Dovecot started from $conf, if any, and wait (bounded)
# until its master and every process it started have exited.
stop() {
    pid=$(tr -dc 0-9 2>/dev/null < "$dir/run/master.pid" || true)
    [ -n "$pid" ] || return 0
    [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = dovecot ] || { rm -f "$dir/run/master.pid"; return 0; }
    kill "$pid" 2>/dev/null || true
    i=0
    while [ -d "/proc/$pid" ]; do
        i=$((i + 1))
        if [ $i = 50 ]; then kill -9 "$pid" 2>/dev/null || true; fi
        [ $i -lt 100 ] || { echo "dovecot: master $pid did not exit" >&2; return 1; }
        sleep 0.1
    done
    # Its children (auth, pop3, log ...) leave with it; a straggler whose
    # parent was the master is now an orphan: end those by pid.
    for p in $(ps -eo pid=,args= | awk -v b="$dir/run" 'index($0, "dovecot") && index($0, b) { print $1 }'); do
        kill "$p" 2>/dev/null || true
    done
    rm -f "$dir/run/master.pid"
    echo "dovecot: stopped (master $pid)"
}

if [ "$port" = stop ]; then stop; exit 0; fi
home=${3:?usage: bench-pop3-dovecot-setup.sh DIR PORT HOME}

# 1. Install, non-interactively, and leave Debian's service off: this bench
#    starts its own Dovecot, on loopback only.
if dpkg-query -W -f '${Status}' dovecot-core dovecot-pop3d 2>/dev/null | grep -vq 'ok installed' ||
    ! [ -x /usr/sbin/dovecot ] || ! [ -x /usr/lib/dovecot/pop3 ]; then
    echo "dovecot: installing from Debian"
    export DEBIAN_FRONTEND=noninteractive
    # policy-rc.d 101: no service starts during the install (Debian's
    # Dovecot would listen on 110 and 143 on every address).
    made_policy=
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        made_policy=1
    fi
    ok=1
    if ! apt-get install -y -q dovecot-core dovecot-pop3d >/tmp/bench-dovecot-apt.log 2>&1; then
        apt-get update -q >>/tmp/bench-dovecot-apt.log 2>&1 || true
        apt-get install -y -q dovecot-core dovecot-pop3d >>/tmp/bench-dovecot-apt.log 2>&1 || ok=
    fi
    [ -z "$made_policy" ] || rm -f /usr/sbin/policy-rc.d
    if [ -z "$ok" ]; then
        echo "dovecot: apt-get install failed; see /tmp/bench-dovecot-apt.log" >&2
        tail -n 20 /tmp/bench-dovecot-apt.log >&2
        exit 1
    fi
fi
echo "dovecot: $(dovecot --version)"

# 2. The test user the mail processes run as.
if ! id "$user" >/dev/null 2>&1; then
    useradd -M -d /nonexistent -s /usr/sbin/nologin "$user"
fi
uid=$(id -u "$user")
gid=$(id -g "$user")

# 3. The configuration: this file alone (no conf.d), everything under DIR.
stop
mkdir -p "$dir/run"
echo "bench:{PLAIN}pw:$uid:$gid::$home::" > "$dir/users"
chgrp dovecot "$dir/users"; chmod 640 "$dir/users"
cat > "$conf" <<CONF
# Written by scripts/bench-pop3-dovecot-setup.sh: a bench-only Dovecot.
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
}
service imap-login {
  inet_listener imap {
    port = 0
  }
  inet_listener imaps {
    port = 0
  }
}
service pop3-login {
  inet_listener pop3s {
    port = 0
  }
}
service submission-login {
  inet_listener submission {
    port = 0
  }
}
CONF
mkdir -p "$dir/state"
doveconf -c "$conf" -n >/dev/null

# 4. Start it and wait (bounded) for the listener.
dovecot -c "$conf"
i=0
until ss -ltn "sport = :$port" | grep -q LISTEN; do
    i=$((i + 1))
    if [ $i -ge 50 ]; then
        echo "dovecot: did not start; see $dir/dovecot.log" >&2
        tail -n 20 "$dir/dovecot.log" >&2 2>/dev/null || true
        exit 1
    fi
    sleep 0.1
done
echo "dovecot: running on 127.0.0.1:$port, user bench (as $user) on $home/Maildir"
