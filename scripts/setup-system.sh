#!/bin/sh
# setup-system.sh LIBEXECDIR [CONFIG] - the root part of a real install:
# the posthorn user and group, the posthorn-login account, a setgid
# enqueue, and the spool.
set -eu
libexec=${1:?usage: setup-system.sh LIBEXECDIR [CONFIG]}
conf=${2:-/etc/posthorn/posthorn.toml}
if [ "$(id -u)" != 0 ]; then echo "setup-system.sh: run as root" >&2; exit 77; fi
getent group posthorn >/dev/null || groupadd --system posthorn
getent passwd posthorn >/dev/null || useradd --system --gid posthorn --home-dir /var/spool/posthorn --no-create-home --shell /usr/sbin/nologin posthorn
# pop3d's and imapd's pre-login processes run as an account that owns
# nothing (login_user in posthorn.toml(5)), with a group of its own.
getent passwd posthorn-login >/dev/null || useradd --system --user-group --home-dir /nonexistent --no-create-home --shell /usr/sbin/nologin posthorn-login
# enqueue is the one program that may write new mail into the spool.
chgrp posthorn "$libexec/enqueue"
chmod 2755 "$libexec/enqueue"
# qrun makes the spool and gives it to the posthorn user; a one-pass run does that.
"$libexec/qrun" -C "$conf" -o
echo "Posthorn is installed. Start the queue runner with systemd (see qrun.service) or cron (qrun.cron)."
