#!/bin/sh
# bench-postfix-setup.sh: a local-only Postfix to measure Posthorn against
# (called by scripts/bench.sh; needs root).
#
# Installs Postfix from Debian unless it is there already, makes it listen
# on loopback only (its SMTP listener moved to 127.0.0.1:2525 so it never
# takes port 25), delivers mail for the bench domain to ~/Maildir/, creates
# the test user benchpf, and starts Postfix. Everything else stays at
# Postfix's defaults, fsyncs included. Safe to run again: each step is
# skipped or redone to the same result.
#
# Usage: sh scripts/bench-postfix-setup.sh [DOMAIN]    (default bench.test)
set -eu
# Postfix's own commands only: a Posthorn "make install" puts its sendmail,
# newaliases and mailq in /usr/local/sbin, ahead of /usr/sbin in root's PATH.
PATH=/usr/sbin:/usr/bin:/sbin:/bin
export PATH

domain=${1:-bench.test}
user=benchpf

if [ "$(id -u)" != 0 ]; then
    echo "bench-postfix-setup: must run as root (installs and starts Postfix)" >&2
    exit 1
fi

# 1. Install, non-interactively, as a "Local only" mailer.
if [ -x /usr/sbin/postfix ] && dpkg-query -W -f '${Status}' postfix 2>/dev/null | grep -q 'ok installed'; then
    echo "postfix: already installed ($(dpkg-query -W -f '${Version}' postfix))"
else
    echo "postfix: installing from Debian"
    printf '%s\n' \
        "postfix postfix/main_mailer_type select Local only" \
        "postfix postfix/mailname string $domain" \
        "postfix postfix/destinations string $domain, localhost" |
        debconf-set-selections
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y -q postfix >/tmp/bench-postfix-apt.log 2>&1; then
        # The package lists may be stale or missing: refresh them once.
        apt-get update -q >>/tmp/bench-postfix-apt.log 2>&1
        apt-get install -y -q postfix >>/tmp/bench-postfix-apt.log 2>&1 || {
            echo "postfix: apt-get install failed; see /tmp/bench-postfix-apt.log" >&2
            tail -n 20 /tmp/bench-postfix-apt.log >&2
            exit 1
        }
    fi
fi

# 2. main.cf: loopback only, Maildir delivery, the bench domain is local.
postconf -e \
    "myhostname = $domain" \
    "mydomain = $domain" \
    "myorigin = $domain" \
    "mydestination = $domain, localhost.$domain, localhost" \
    "inet_interfaces = loopback-only" \
    "inet_protocols = ipv4" \
    "mynetworks = 127.0.0.0/8" \
    "relayhost =" \
    "home_mailbox = Maildir/" \
    "mailbox_command =" \
    "maillog_file = /var/log/postfix-bench.log"

# 3. master.cf: the SMTP listener on a port of its own, never port 25.
#    postconf -M prints the current service entry; only rewrite it if it
#    still listens on the default "smtp" port.
if [ -n "$(postconf -M smtp/inet 2>/dev/null)" ]; then
    postconf -MX smtp/inet
fi
if [ -z "$(postconf -M 127.0.0.1:2525/inet 2>/dev/null)" ]; then
    postconf -M "127.0.0.1:2525/inet = 127.0.0.1:2525 inet n - y - - smtpd"
fi
# Postfix's own log file needs the postlog service (present in Debian's 3.7
# master.cf; add it if missing).
if [ -z "$(postconf -M postlog/unix-dgram 2>/dev/null)" ]; then
    postconf -M "postlog/unix-dgram = postlog unix-dgram n - n - 1 postlogd"
fi

# 4. The test user, with an empty Maildir to start from.
if ! id "$user" >/dev/null 2>&1; then
    useradd -m -s /usr/sbin/nologin "$user"
fi
home=$(getent passwd "$user" | cut -d: -f6)
[ -d "$home" ] || { mkdir -p "$home"; chown "$user:" "$home"; }

# 5. Aliases and the chroot copies of /etc files, as Debian's init script does.
[ -f /etc/aliases ] || echo "postmaster: root" > /etc/aliases
/usr/sbin/postalias /etc/aliases
if [ -x /usr/lib/postfix/configure-instance.sh ]; then
    /usr/lib/postfix/configure-instance.sh - >/dev/null 2>&1 || true
fi
postfix check

# 6. Start it, or reload it if running. No systemd here (PID 1 is not
#    systemd in this container), so call postfix directly.
if postfix status >/dev/null 2>&1; then
    postfix reload >/dev/null 2>&1
    echo "postfix: reloaded"
else
    postfix start >/dev/null 2>&1
    echo "postfix: started"
fi
i=0
while ! postfix status >/dev/null 2>&1; do
    i=$((i + 1))
    if [ $i -ge 50 ]; then
        echo "postfix: did not start; see /var/log/postfix-bench.log" >&2
        tail -n 20 /var/log/postfix-bench.log >&2 2>/dev/null || true
        exit 1
    fi
    sleep 0.1
done
echo "postfix: running, mail for $user@$domain goes to $home/Maildir/"
