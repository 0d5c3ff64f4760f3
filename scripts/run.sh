#!/bin/sh
# make run: a throwaway Posthorn instance under ./run/ with no root needed.
# It starts qrun, pipes in a message the way Debian's cron does, and shows
# it arriving in the Maildir with the log lines. `make stop` (or
# `sh scripts/run.sh stop`) stops qrun again.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
bin="$top/target/release"
inst="$top/run"
conf="$inst/posthorn.toml"

stop() {
    if [ -f "$inst/spool/qrun.lock" ]; then
        pid=$(cat "$inst/spool/qrun.lock" 2>/dev/null || true)
        if [ -n "$pid" ] && kill "$pid" 2>/dev/null; then echo "stopped qrun (pid $pid)"; fi
    fi
}

if [ "${1:-}" = stop ]; then stop; exit 0; fi
stop
rm -rf "$inst"
mkdir -p "$inst/home/demo"
cat > "$conf" <<CONF
# A whole Posthorn instance in one directory: paths are relative to this file.
hostname = "posthorn.test"
spool = "spool"
users = "users"
system_users = false
aliases = "aliases"
mailbox = "~/Maildir/"
log = "stderr"
libexec = "$bin"

[queue]
min_backoff = "10s"
max_backoff = "1m"
CONF
# A mail user in Dovecot's passwd-file format; no uid: "the user qrun runs as".
echo "demo:{PLAIN}demo::::$inst/home/demo::" > "$inst/users"
cat > "$inst/aliases" <<ALIASES
# Mail for root and postmaster goes to demo.
root: demo
postmaster: root
ALIASES
if [ "$(id -u)" = 0 ]; then
    # As root, qrun and deliver switch to an unprivileged user: use nobody here.
    echo 'user = "nobody"' | cat - "$conf" > "$conf.new" && mv "$conf.new" "$conf"
    chown -R nobody:nogroup "$inst"
fi

echo "== starting qrun (log in run/qrun.log)"
"$bin/qrun" -C "$conf" > "$inst/qrun.log" 2>&1 &
qpid=$!
i=0; while [ ! -p "$inst/spool/trigger" ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i+1)); done

echo "== a cron job's output, piped in as Debian's cron does:"
echo "   sendmail -i -FCronDaemon -B8BITMIME -oem root"
printf 'From: root (Cron Daemon)\nTo: root\nSubject: Cron <root@posthorn> run-parts /etc/cron.daily\nContent-Type: text/plain; charset=UTF-8\n\nlogrotate: rotated 3 files\n' |
    "$bin/sendmail" -C "$conf" -i -FCronDaemon -B8BITMIME -oem root
echo "   sendmail exited $? (0: the message is on disk)"

i=0; while [ -z "$(ls "$inst/home/demo/Maildir/new" 2>/dev/null)" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
f=$(ls "$inst/home/demo/Maildir/new" 2>/dev/null | head -n 1)
if [ -z "$f" ]; then echo "no mail arrived; see $inst/qrun.log"; cat "$inst/qrun.log"; exit 1; fi
echo
echo "== it arrived: run/home/demo/Maildir/new/$f"
sed 's/^/   /' "$inst/home/demo/Maildir/new/$f"
echo
echo "== the log lines:"
sleep 0.2
sed 's/^/   /' "$inst/qrun.log"
echo
echo "== the queue now:"
"$bin/sendmail" -C "$conf" -bp | sed 's/^/   /'
echo
echo "qrun is still running (pid $qpid). Try:"
echo "   echo hello | $bin/sendmail -C $conf demo"
echo "   ls run/home/demo/Maildir/new; cat run/qrun.log"
echo "Stop it with: make stop"
