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
# both do the same work without the network in between. No daemon is
# started: Dovecot's imap reads a configuration file of its own
# ($dir/dovecot.conf, with its base_dir and state_dir in $dir), so the
# machine's Dovecot and /etc/dovecot are not touched.
#
# Per server, in fresh sessions, each timed from the command to its
# tagged reply:
#   select     process start, greeting (and LOGIN), SELECT INBOX
#   flags      FETCH 1:* (UID FLAGS)
#   env+bs     FETCH 1:* (ENVELOPE BODYSTRUCTURE), cold (the server's
#              cache removed: posthorn-cache; dovecot.index*) and warm
#   search     UID SEARCH TEXT <a word in one message>
#   big        FETCH <n> BODY.PEEK[] of the 5 MB message
#   sort       SORT (DATE) US-ASCII ALL, cold (caches removed as for
#              env+bs) and warm (right after the cold session)
#   thread     THREAD REFERENCES US-ASCII ALL, cold and warm likewise
#   RSS        the session's peak RSS (VmHWM) after each command
# After a warm-up session each (UIDs given, Dovecot's index built) the
# folders rest 2.5 s, as between a user's sessions, and a second one
# lets each server remember the folder (posthorn-list; Dovecot's index).
# The page cache stays warm. Each load runs BENCH_ROUNDS (3) times,
# alternating which server goes first, and the best round counts.
#
# Then, once per server (their numbers are not a best of rounds):
#   100 idle   BENCH_IMAP_SESSIONS (100) sessions at once, each logged
#              in with INBOX selected and then quiet; the sum over the
#              server processes of Rss, Pss and private (Private_Clean
#              + Private_Dirty) from /proc/PID/smaps_rollup, and the
#              same per session.
#   idle wake  one session in IDLE on INBOX; BENCH_IMAP_DELIVERIES (200)
#              messages delivered one after another by Posthorn's
#              deliver, run as the mailbox owner, into that server's
#              Maildir (a second posthorn.toml points deliver at
#              Dovecot's copy). Timed from the rename into new/ (seen
#              by the client's own inotify watch on new/) to the
#              untagged "* n EXISTS" on the client's pipe; median and
#              p99. Both servers watch the folder with inotify: imapd
#              reads just the delivery its event names (a full look,
#              after 20 ms, only for other changes, and for the first
#              wake of an IDLE, which the p99 includes);
#              Dovecot's imap (2.3) looks 500 ms after the first event
#              it sees (NOTIFY_DELAY_MSECS in mailbox-watch.c), which
#              may come before the rename. mailbox_idle_check_interval
#              stays at its 30 s default: that timer is only for changes
#              inotify misses. These loads run last, as they add
#              messages to both folders.
# Only the ratio, measured in the same run, means anything.
set -eu
if [ -z "${BASH_VERSION:-}" ]; then exec bash "$0" "$@"; fi

top=$(cd "$(dirname "$0")/.." && pwd)
bin="${BENCH_BIN:-$top/target/release}"
dir="${BENCH_IMAP_DIR:-$top/target/bench-imap}"
messages=${BENCH_IMAP_MESSAGES:-10000}
rounds=${BENCH_ROUNDS:-3}
sessions=${BENCH_IMAP_SESSIONS:-100}
deliveries=${BENCH_IMAP_DELIVERIES:-200}
dovecot=/usr/lib/dovecot/imap

say() { printf '%s\n' "== $*" >&2; }
die() { printf 'bench-imap: %s\n' "$*" >&2; exit 1; }

[ -x "$bin/imapd" ] || die "$bin/imapd is missing: run make build"
[ -x "$bin/deliver" ] || die "$bin/deliver is missing: run make build"
if [ ! -x "$dovecot" ] && [ "$(id -u)" = 0 ]; then
    sh "$top/scripts/bench-install.sh" dovecot-core dovecot-imapd
fi
[ -x "$dovecot" ] || die "Dovecot's imap is missing: apt-get install dovecot-imapd"
command -v python3 >/dev/null || die "python3 is needed"
[ -r /proc/self/smaps_rollup ] || die "/proc/PID/smaps_rollup is needed (Linux 4.14 or later)"
[ -d /proc/sys/fs/inotify ] || die "inotify is needed for the IDLE load"

# Every server and deliver the client starts is written to $pids; on
# any exit (done, an error, ^C, a TERM) the client and those still
# running are ended, so no session outlives the bench. A pid is checked
# against its command line first, in case it has been reused.
mkdir -p "$dir"
pids="$dir/pids"
: > "$pids"
client=
cleanup() {
    local p
    if [ -n "$client" ]; then kill "$client" 2>/dev/null || true; fi
    while read -r p; do
        case "$(tr '\0' ' ' 2>/dev/null < "/proc/$p/cmdline")" in
            "$bin/imapd "* | "$dovecot "* | "$bin/deliver "*) kill "$p" 2>/dev/null || true ;;
        esac
    done < "$pids"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

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
# deliver into Dovecot's copy: the same program, another mailbox.
sed "s|$dir/posthorn/Maildir/|$dir/dovecot/Maildir/|" "$dir/posthorn.toml" > "$dir/deliver-dovecot.toml"
echo "bench:{PLAIN}bench:::::" > "$dir/users"
# Dovecot's imap alone, from this file only: nothing of /etc/dovecot, and
# its base_dir and state_dir here, so that no session reaches the sockets
# (stats-writer) of a Dovecot running on this machine.
mkdir -p "$dir/run" "$dir/state"
cat > "$dir/dovecot.conf" <<EOF
base_dir = $dir/run
state_dir = $dir/state
mail_location = maildir:$dir/dovecot/Maildir
log_path = $dir/dovecot.log
ssl = no
EOF
chown -R "$run_as" "$dir"

big=$((messages / 2 + 1))
say "imapd beside Dovecot $(dovecot --version 2>/dev/null | cut -d" " -f1): $messages messages, $rounds rounds, best counts"
# The client runs in the background so that a signal to this shell is
# acted on at once (the trap), not when the client ends.
python3 - "$dir" "$bin/imapd" "$dovecot" "$run_as" "$rounds" "$big" "$bin/deliver" "$sessions" "$deliveries" <<'PY' &
import ctypes, os, pwd, re, select, signal, subprocess, sys, time
d, imapd, dovecot, user, rounds, big = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]), sys.argv[6]
deliver, nsessions, ndeliveries = sys.argv[7], int(sys.argv[8]), int(sys.argv[9])
pw = pwd.getpwnam(user)
# A TERM ends the client as ^C does; the shell's trap ends the servers.
signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

def demote():
    if os.getuid() == 0:
        os.setgroups([]); os.setgid(pw.pw_gid); os.setuid(pw.pw_uid)

def spawn(argv, **kw):
    """spawn - start a server or deliver, its pid noted for the cleanup."""
    p = subprocess.Popen(argv, preexec_fn=demote, **kw)
    with open(f"{d}/pids", "a") as f:
        f.write(f"{p.pid}\n")
    return p

class Session:
    def __init__(self, which):
        if which == "posthorn":
            argv, env = [imapd, "-C", f"{d}/posthorn.toml"], {"PATH": "/usr/bin:/bin"}
        else:
            argv = [dovecot, "-c", f"{d}/dovecot.conf"]
            env = {"USER": user, "HOME": f"{d}/dovecot", "PATH": "/usr/bin:/bin"}
        self.t0 = time.perf_counter()
        self.p = spawn(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                       stderr=subprocess.DEVNULL, env=env, cwd=d)
        self.n = 0
        if not self.p.stdout.readline().startswith((b"* OK", b"* PREAUTH")):
            raise SystemExit(f"{which}: no greeting")
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
    ("sort cold", "SORT (DATE) US-ASCII ALL"),
    ("sort warm", "SORT (DATE) US-ASCII ALL"),
    ("thread cold", "THREAD REFERENCES US-ASCII ALL"),
    ("thread warm", "THREAD REFERENCES US-ASCII ALL"),
]

def smaps(pid, fields):
    """smaps - the sum of `fields` in /proc/PID/smaps_rollup, in kB; 0 for
    a process gone meanwhile (imapd's login processes end at the login)."""
    t = 0
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for l in f:
                if l.split(":")[0] in fields:
                    t += int(l.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        return 0
    return t

def tree(pid):
    """tree - pid and its descendants (a server may have helpers)."""
    kids = {}
    for e in os.listdir("/proc"):
        if e.isdigit():
            try:
                with open(f"/proc/{e}/stat") as f:
                    pp = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            kids.setdefault(pp, []).append(int(e))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out

def many(which):
    """many - nsessions sessions at once, each with INBOX selected, then
    quiet; the Rss, Pss and private memory of all their processes (MiB)."""
    ss = []
    try:
        for _ in range(nsessions):
            s = Session(which)
            ss.append(s)
            s.cmd("SELECT INBOX")
        pids = [p for s in ss for p in tree(s.p.pid)]
        return tuple(sum(smaps(p, f) for p in pids) / 1024
                     for f in (("Rss",), ("Pss",), ("Private_Clean", "Private_Dirty")))
    finally:
        for s in ss:
            s.close()

libc = ctypes.CDLL(None, use_errno=True)
IN_MOVED_TO, IN_CREATE = 0x80, 0x100

def inotify(path):
    """inotify - a non-blocking inotify fd told of arrivals in `path`."""
    fd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
    if fd < 0 or libc.inotify_add_watch(fd, path.encode(), IN_MOVED_TO | IN_CREATE) < 0:
        raise SystemExit(f"inotify on {path}: {os.strerror(ctypes.get_errno())}")
    return fd

EXISTS = re.compile(rb"^\* \d+ EXISTS\r?$")

def wake(which):
    """wake - ndeliveries deliveries, one at a time, to a session in IDLE;
    the median and p99 (s) from the rename into new/ to "* n EXISTS"."""
    root = f"{d}/{which}/Maildir"
    conf = f"{d}/posthorn.toml" if which == "posthorn" else f"{d}/deliver-dovecot.toml"
    s = Session(which)
    s.cmd("SELECT INBOX")
    s.p.stdin.write(b"i IDLE\r\n"); s.p.stdin.flush()
    if not s.p.stdout.readline().startswith(b"+"):
        raise SystemExit(f"{which}: IDLE refused")
    # From here the pipe is read raw: nothing more was sent before a
    # delivery, so the reader's buffer is empty.
    out = s.p.stdout.fileno()
    ino = inotify(f"{root}/new")
    got, buf = [], b""
    try:
        for i in range(ndeliveries):
            time.sleep(0.1)   # both servers back at rest between deliveries
            msg = (f"From: w{i}@example.org\nTo: bench@bench.test\nSubject: wake {i}\n"
                   f"Message-ID: <wake{i}@bench.test>\n\nwake up {i}\n").encode()
            dp = spawn([deliver, "-C", conf, "bench"], stdin=subprocess.PIPE,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                       env={"PATH": "/usr/bin:/bin"}, cwd=d)
            dp.stdin.write(msg); dp.stdin.close()
            renamed = exists = None
            limit = time.monotonic() + 60
            while renamed is None or exists is None:
                r = select.select([ino, out], [], [], max(limit - time.monotonic(), 0))[0]
                now = time.perf_counter()
                if not r:
                    raise SystemExit(f"{which}: delivery {i}: no EXISTS within 60 s")
                if ino in r:
                    os.read(ino, 65536)
                    if renamed is None:
                        renamed = now
                if out in r:
                    data = os.read(out, 65536)
                    if not data:
                        raise SystemExit(f"{which}: the server went away in IDLE")
                    buf += data
                    *lines, buf = buf.split(b"\n")
                    if exists is None and any(EXISTS.match(l) for l in lines):
                        exists = now
            err = dp.stderr.read()
            if dp.wait() != 0:
                raise SystemExit(f"deliver exited {dp.returncode}: {err.decode(errors='replace')}")
            got.append(exists - renamed)
    finally:
        os.close(ino)
    s.p.stdin.write(b"DONE\r\n"); s.p.stdin.flush()
    s.close()
    got.sort()
    return got[len(got) // 2], got[max(0, -(-len(got) * 99 // 100) - 1)]

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
            if name.endswith(" cold"):
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
# Once each, last: the deliveries add messages to both folders.
mem = {w: many(w) for w in ("posthorn", "dovecot")}
lat = {w: wake(w) for w in ("posthorn", "dovecot")}
print(f"{'load':<14}{'imapd ms':>10}{'Dovecot ms':>12}{'imapd MiB':>11}{'Dovecot MiB':>13}")
for name, _ in loads:
    (pt, pr), (dt, dr) = best[("posthorn", name)], best[("dovecot", name)]
    print(f"{name:<14}{pt*1000:>10.1f}{dt*1000:>12.1f}{pr:>11}{dr:>13}")
for i, q in enumerate(("median", "p99")):
    pt, dt = lat["posthorn"][i], lat["dovecot"][i]
    print(f"{'wake ' + q:<14}{pt*1000:>10.1f}{dt*1000:>12.1f}{'-':>11}{'-':>13}")
print()
print(f"{f'{nsessions} idle':<14}{'imapd MiB':>10}{'Dovecot MiB':>12}{'imapd/sess':>11}{'Dovecot/sess':>13}")
for i, q in enumerate(("Rss", "Pss", "private")):
    pm, dm = mem["posthorn"][i], mem["dovecot"][i]
    print(f"{q:<14}{pm:>10.1f}{dm:>12.1f}{pm/nsessions:>11.2f}{dm/nsessions:>13.2f}")
print(f"wake: {ndeliveries} deliveries to a session in IDLE, from the rename into new/ to * n EXISTS")
PY
client=$!
wait "$client"
client=
