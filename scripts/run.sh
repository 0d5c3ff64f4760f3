#!/bin/sh
# make run: a throwaway Posthorn instance under ./run/ with no root needed.
# It starts qrun, pipes in a message the way Debian's cron does, and shows
# it arriving in the Maildir with the log lines, then reads it back over POP3
# from pop3d on 127.0.0.1:11110 (POP3_PORT), and sends one more through
# smtpd on 127.0.0.1:11025 (SMTP_PORT), and lists both over IMAP from
# imapd on 127.0.0.1:11143 (IMAP_PORT). `make stop` (or
# `sh scripts/run.sh stop`) stops qrun and the listeners again.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
bin="$top/target/release"
inst="$top/run"
conf="$inst/posthorn.toml"

pop3_port=${POP3_PORT:-11110}
smtp_port=${SMTP_PORT:-11025}
imap_port=${IMAP_PORT:-11143}

stop() {
    if [ -f "$inst/spool/qrun.lock" ]; then
        pid=$(cat "$inst/spool/qrun.lock" 2>/dev/null || true)
        if [ -n "$pid" ] && kill "$pid" 2>/dev/null; then echo "stopped qrun (pid $pid)"; fi
    fi
    for l in pop3 smtp imap; do
        if [ -f "$inst/$l.pid" ]; then
            pid=$(cat "$inst/$l.pid")
            if kill "$pid" 2>/dev/null; then echo "stopped the $l listener (pid $pid)"; fi
            rm -f "$inst/$l.pid"
        fi
    done
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
    # As root, qrun and deliver switch to an unprivileged user, and pop3d's
    # and imapd's pre-login processes to another: nobody for both here.
    printf 'user = "nobody"\nlogin_user = "nobody"\n' | cat - "$conf" > "$conf.new" && mv "$conf.new" "$conf"
    chown -R nobody:nogroup "$inst"
fi

echo "== starting qrun (log in run/qrun.log)"
"$bin/qrun" -C "$conf" < /dev/null > "$inst/qrun.log" 2>&1 &
qpid=$!
i=0; while [ ! -p "$inst/spool/trigger" ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i+1)); done

# pop3d is one session per process on stdin/stdout: systemd-socket-activate
# plays inetd here, on a loopback port of its own.
if command -v systemd-socket-activate >/dev/null; then
    echo "== starting pop3d on 127.0.0.1:$pop3_port (through systemd-socket-activate --inetd)"
    systemd-socket-activate -l "127.0.0.1:$pop3_port" --inetd -a "$bin/pop3d" -C "$conf" < /dev/null > /dev/null 2>> "$inst/pop3d.log" &
    echo $! > "$inst/pop3.pid"
    echo "== starting smtpd (MX mode) on 127.0.0.1:$smtp_port (through systemd-socket-activate --inetd)"
    systemd-socket-activate -l "127.0.0.1:$smtp_port" --inetd -a "$bin/smtpd" -C "$conf" < /dev/null > /dev/null 2>> "$inst/smtpd.log" &
    echo $! > "$inst/smtp.pid"
    echo "== starting imapd on 127.0.0.1:$imap_port (through systemd-socket-activate --inetd)"
    systemd-socket-activate -l "127.0.0.1:$imap_port" --inetd -a "$bin/imapd" -C "$conf" < /dev/null > /dev/null 2>> "$inst/imapd.log" &
    echo $! > "$inst/imap.pid"
fi

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
if [ -f "$inst/pop3.pid" ] && command -v python3 >/dev/null; then
    echo
    echo "== and read back over POP3 by Python's poplib, as demo (password demo):"
    python3 - "$pop3_port" <<'PY' | sed 's/^/   /'
import poplib, sys, time
for _ in range(50):
    try:
        p = poplib.POP3("127.0.0.1", int(sys.argv[1]), timeout=10)
        break
    except OSError:
        time.sleep(0.1)
print(p.getwelcome().decode())
p.user("demo"); p.pass_("demo")
count, size = p.stat()
print(f"STAT: {count} message(s), {size} octets")
for line in p.retr(1)[1]:
    if line.startswith(b"Subject:"):
        print("RETR 1:", line.decode())
print(p.quit().decode())
PY
fi
if [ -f "$inst/smtp.pid" ] && command -v python3 >/dev/null; then
    echo
    echo "== a message over SMTP, from Python's smtplib to smtpd on 127.0.0.1:$smtp_port:"
    python3 - "$smtp_port" <<'PY' | sed 's/^/   /'
import smtplib, sys, time
for _ in range(50):
    try:
        s = smtplib.SMTP("127.0.0.1", int(sys.argv[1]), timeout=10)
        break
    except OSError:
        time.sleep(0.1)
s.ehlo("client.example")
print("EHLO:", " ".join(sorted(s.esmtp_features)))
msg = b"From: ann@example.org\r\nTo: demo@posthorn.test\r\nSubject: hello over SMTP\r\n\r\nhi demo\r\n"
print("sendmail:", s.sendmail("ann@example.org", ["demo@posthorn.test"], msg) or "accepted")
try:
    s.sendmail("ann@example.org", ["someone@elsewhere.example"], msg)
except smtplib.SMTPRecipientsRefused as e:
    print("relay attempt:", *e.recipients["someone@elsewhere.example"])
s.quit()
PY
    i=0; while [ "$(ls "$inst/home/demo/Maildir/new" | wc -l)" -lt 2 ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
    f=$(grep -l "hello over SMTP" "$inst/home/demo/Maildir/new/"* 2>/dev/null | head -n 1)
    if [ -n "$f" ]; then
        echo "   delivered: run/home/demo/Maildir/new/$(basename "$f"), with"
        sed -n '/^Received:/,/^[^[:space:]R]/p' "$f" | sed '$d' | sed 's/^/      /'
    fi
    echo "== smtpd's log lines (run/smtpd.log):"
    sleep 0.2
    grep -v -e '^Listening' -e '^Communication' -e '^Connection from' -e '^Spawned' -e '^Execing' -e '^Child' "$inst/smtpd.log" | sed 's/^/   /'
fi
if [ -f "$inst/imap.pid" ] && command -v python3 >/dev/null; then
    echo
    echo "== the INBOX over IMAP, from Python's imaplib to imapd on 127.0.0.1:$imap_port:"
    python3 - "$imap_port" <<'PY' | sed 's/^/   /'
import imaplib, sys, time
for _ in range(50):
    try:
        m = imaplib.IMAP4("127.0.0.1", int(sys.argv[1]), timeout=10)
        break
    except OSError:
        time.sleep(0.1)
m.login("demo", "demo")
typ, data = m.select("INBOX")
print("SELECT INBOX:", data[0].decode(), "messages, UIDVALIDITY", m.untagged_responses.get("UIDVALIDITY", [b"?"])[0].decode())
typ, data = m.fetch("1:*", "(UID FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
for part in data:
    if isinstance(part, tuple):
        print(part[0].decode().split(" BODY")[0] + ")", part[1].decode().strip())
m.logout()
PY
fi
echo
echo "== the queue now:"
"$bin/sendmail" -C "$conf" -bp | sed 's/^/   /'
echo
echo "qrun is still running (pid $qpid). Try:"
echo "   echo hello | $bin/sendmail -C $conf demo"
echo "   ls run/home/demo/Maildir/new; cat run/qrun.log"
[ -f "$inst/pop3.pid" ] && echo "   python3 -c 'import poplib; p=poplib.POP3(\"127.0.0.1\", $pop3_port); p.user(\"demo\"); p.pass_(\"demo\"); print(p.stat())'"
[ -f "$inst/smtp.pid" ] && echo "   swaks --server 127.0.0.1:$smtp_port --to demo@posthorn.test"
[ -f "$inst/imap.pid" ] && echo "   python3 -c 'import imaplib; m=imaplib.IMAP4(\"127.0.0.1\", $imap_port); m.login(\"demo\", \"demo\"); print(m.select())'"
echo "Stop it (qrun and the listeners) with: make stop"
