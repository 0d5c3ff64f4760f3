#!/bin/bash
# bench-imap.sh (run by make bench after the POP3 loads, or alone):
# Posthorn's imapd beside Dovecot's imap, on this machine, in one run.
#
# One Maildir of BENCH_IMAP_MESSAGES (10,000) messages is made once:
# mostly plain text of a few kB, one in five multipart/alternative, one
# in twenty with a base64 attachment, one of 5 MB; names as deliver
# writes them, most in cur/ with the Seen flag. Each server gets its own
# copy and runs one session per process on a pipe, as nobody (root) or
# as the caller: imapd after LOGIN, Dovecot's imap preauthenticated, so
# both do the same work without the network in between.
#
# Per server, in fresh sessions, each timed from the command to its
# tagged reply:
#   select     process start, greeting (and LOGIN), SELECT INBOX
#   flags      FETCH 1:* (UID FLAGS)
#   env+bs     FETCH 1:* (ENVELOPE BODYSTRUCTURE), cold (the server's
#              cache removed: posthorn-cache; dovecot.index*) and warm
#   search     UID SEARCH TEXT <a word in one message>
#   big        FETCH <n> BODY.PEEK[] of the 5 MB message
#   RSS        the session's peak RSS (VmHWM) after each command
# After a warm-up session each (UIDs given, Dovecot's index built) the
# folders rest 2.5 s, as between a user's sessions, and a second one
# lets each server remember the folder (posthorn-list; Dovecot's index).
# The page cache stays warm. Each load runs BENCH_ROUNDS (3) times,
# alternating which server goes first, and the best round counts. Only
# the ratio, measured in the same run, means anything.
set -eu
if [ -z "${BASH_VERSION:-}" ]; then exec bash "$0" "$@"; fi

top=$(cd "$(dirname "$0")/.." && pwd)
bin="$top/target/release"
dir="${BENCH_IMAP_DIR:-$top/target/bench-imap}"
messages=${BENCH_IMAP_MESSAGES:-10000}
rounds=${BENCH_ROUNDS:-3}
dovecot=/usr/lib/dovecot/imap

say() { printf '%s\n' "== $*" >&2; }
die() { printf 'bench-imap: %s\n' "$*" >&2; exit 1; }

[ -x "$bin/imapd" ] || die "$bin/imapd is missing: run make build"
[ -x "$dovecot" ] || die "Dovecot's imap is missing: apt-get install dovecot-imapd"
command -v python3 >/dev/null || die "python3 is needed"

if [ "$(id -u)" = 0 ]; then run_as="nobody"; else run_as="$(id -un)"; fi

mkdir -p "$dir"
if [ ! -f "$dir/made-$messages" ]; then
    say "making a Maildir of $messages messages in $dir/seed"
    rm -rf "$dir/seed"
    python3 - "$dir/seed" "$messages" <<'PY'
import os, random, sys, base64
root, n = sys.argv[1], int(sys.argv[2])
random.seed(7)
for s in ("new", "cur", "tmp"):
    os.makedirs(os.path.join(root, s), exist_ok=True)
words = "the of and to in mail server message folder client index cache flag uid".split()
def text(k):
    return "\n".join(" ".join(random.choice(words) for _ in range(12)) for _ in range(k)) + "\n"
for i in range(n):
    t = 1_700_000_000 + i * 60
    head = (f"From: Sender {i % 97} <s{i % 97}@example.org>\nTo: ann@bench.test\n"
            f"Subject: message {i} about {random.choice(words)}\n"
            f"Date: Tue, 14 Nov 2023 10:00:00 +0000\nMessage-ID: <{i}@bench.test>\nMIME-Version: 1.0\n")
    if i == n // 2:
        body = head + "Content-Type: text/plain\n\n" + text(80000)
    elif i % 20 == 0:
        att = base64.encodebytes(os.urandom(30000)).decode()
        body = head + ("Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: text/plain\n\n"
                       + text(20) + "--b\nContent-Type: application/octet-stream\n"
                       "Content-Transfer-Encoding: base64\n\n" + att + "--b--\n")
    elif i % 5 == 0:
        body = head + ("Content-Type: multipart/alternative; boundary=a\n\n--a\nContent-Type: text/plain\n\n"
                       + text(30) + "--a\nContent-Type: text/html\n\n<p>" + text(30) + "</p>\n--a--\n")
    else:
        body = head + "Content-Type: text/plain\n\n" + text(random.randint(5, 60))
    if i == 4321:
        body += "zanzibar\n"
    data = body.encode()
    crlf = len(data) + data.count(b"\n")
    name = f"{t}.M{i}P1Q{i}R{i:08x}.bench,S={len(data)},W={crlf}"
    sub, info = ("new", "") if i >= n * 85 // 100 else ("cur", ":2,S")
    with open(os.path.join(root, sub, name + info), "wb") as f:
        f.write(data)
    os.utime(os.path.join(root, sub, name + info), (t, t))
PY
    touch "$dir/made-$messages"
fi

for s in posthorn dovecot; do
    rm -rf "$dir/$s"
    mkdir -p "$dir/$s"
    cp -a "$dir/seed" "$dir/$s/Maildir"
done
cat > "$dir/posthorn.toml" <<EOF
users = "users"
system_users = false
mailbox = "$dir/posthorn/Maildir/"
log = "stderr"
EOF
echo "bench:{PLAIN}bench:::::" > "$dir/users"
cat > "$dir/dovecot.conf" <<EOF
mail_location = maildir:$dir/dovecot/Maildir
log_path = $dir/dovecot.log
ssl = no
EOF
chown -R "$run_as" "$dir"

big=$((messages / 2 + 1))
say "imapd beside Dovecot $(dovecot --version 2>/dev/null | cut -d" " -f1): $messages messages, $rounds rounds, best counts"
python3 - "$dir" "$bin/imapd" "$dovecot" "$run_as" "$rounds" "$big" <<'PY'
import os, pwd, subprocess, sys, time
d, imapd, dovecot, user, rounds, big = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]), sys.argv[6]
pw = pwd.getpwnam(user)

def demote():
    if os.getuid() == 0:
        os.setgroups([]); os.setgid(pw.pw_gid); os.setuid(pw.pw_uid)

class Session:
    def __init__(self, which):
        if which == "posthorn":
            argv, env = [imapd, "-C", f"{d}/posthorn.toml"], {"PATH": "/usr/bin:/bin"}
        else:
            argv = [dovecot, "-c", f"{d}/dovecot.conf"]
            env = {"USER": user, "HOME": f"{d}/dovecot", "PATH": "/usr/bin:/bin"}
        self.t0 = time.perf_counter()
        self.p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.DEVNULL, env=env, preexec_fn=demote, cwd=d)
        self.n = 0
        self.p.stdout.readline()
        if which == "posthorn":
            self.cmd("LOGIN bench bench")

    def cmd(self, c):
        self.n += 1
        tag = f"b{self.n}".encode()
        self.p.stdin.write(tag + b" " + c.encode() + b"\r\n"); self.p.stdin.flush()
        t = time.perf_counter()
        while True:
            line = self.p.stdout.readline()
            if not line:
                raise SystemExit(f"server went away after {c}")
            while line.rstrip().endswith(b"}") and b"{" in line:
                k = int(line.rstrip()[line.rstrip().rindex(b"{") + 1:-1])
                self.p.stdout.read(k)
                line = self.p.stdout.readline()
            if line.startswith(tag + b" "):
                if not line.startswith(tag + b" OK"):
                    raise SystemExit(f"{c}: {line!r}")
                return time.perf_counter() - t

    def rss(self):
        with open(f"/proc/{self.p.pid}/status") as f:
            for l in f:
                if l.startswith("VmHWM:"):
                    return int(l.split()[1]) // 1024
        return 0

    def close(self):
        self.p.stdin.write(b"z LOGOUT\r\n"); self.p.stdin.flush()
        self.p.communicate()

def uncache(which):
    root = f"{d}/{which}/Maildir"
    for f in os.listdir(root):
        if f == "posthorn-cache" or f.startswith("dovecot.index"):
            os.remove(os.path.join(root, f))

loads = [
    ("select", None),
    ("flags", "FETCH 1:* (UID FLAGS)"),
    ("env+bs cold", "FETCH 1:* (ENVELOPE BODYSTRUCTURE)"),
    ("env+bs warm", "FETCH 1:* (ENVELOPE BODYSTRUCTURE)"),
    ("search", "UID SEARCH TEXT zanzibar"),
    ("big", f"FETCH {big} BODY.PEEK[]"),
]
best = {}
for which in ("posthorn", "dovecot"):
    s = Session(which); s.cmd("SELECT INBOX"); s.close()   # warm-up: UIDs, index
time.sleep(2.5)   # a folder at rest, as between a user's sessions
for which in ("posthorn", "dovecot"):
    s = Session(which); s.cmd("SELECT INBOX"); s.close()   # posthorn-list, Dovecot's index
for r in range(rounds):
    order = ("posthorn", "dovecot") if r % 2 == 0 else ("dovecot", "posthorn")
    for which in order:
        for name, c in loads:
            if name == "env+bs cold":
                uncache(which)
            s = Session(which)
            t = s.cmd("SELECT INBOX")
            if name == "select":
                t = time.perf_counter() - s.t0
            else:
                t = s.cmd(c)
            rss = s.rss()
            s.close()
            k = (which, name)
            if k not in best or t < best[k][0]:
                best[k] = (t, rss)
print(f"{'load':<14}{'imapd ms':>10}{'Dovecot ms':>12}{'imapd MiB':>11}{'Dovecot MiB':>13}")
for name, _ in loads:
    (pt, pr), (dt, dr) = best[("posthorn", name)], best[("dovecot", name)]
    print(f"{name:<14}{pt*1000:>10.1f}{dt*1000:>12.1f}{pr:>11}{dr:>13}")
PY
