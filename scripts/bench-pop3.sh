#!/bin/bash
# bench-pop3.sh (run by make bench after the local mail path loads):
# Posthorn's pop3d beside Dovecot's POP3 server, on this machine, in one run.
#
# One Maildir of BENCH_POP3_MESSAGES (10,000) messages totalling
# BENCH_POP3_MB (250) MB is made once: sizes mixed as in a real inbox (most
# a few kB, some hundreds of kB, a few MB), LF line ends, a few lines that
# start with a dot, names as deliver writes them
# (<secs>.M<usec>P<pid>Q<n>R<rand>.<host>,S=<size>,W=<crlfsize>), 15% in
# new/ and the rest in cur/ with the Seen flag. pop3d serves one copy,
# through systemd-socket-activate --inetd on 127.0.0.1:11996, as nobody;
# Dovecot serves its own copy (it rewrites its Maildir: index files,
# new/ -> cur/), as phbench-dc, on 127.0.0.1:11995, an instance of its
# own (scripts/bench-dovecot-setup.sh; the machine's Dovecot is not
# touched). Neither sets Seen on RETR
# (pop3d --no-flag-updates, Dovecot pop3_no_flag_updates), so every run
# finds the Maildir as the last one left it.
#
# One raw-socket client (Python, no poplib) measures, per session:
#   login  connect until the +OK to PASS (the maildrop is listed then)
#   STAT   the STAT round trip
#   UIDL   UIDL of every message, until the final "."
#   RETR   RETR of every message, 16 commands in flight (PIPELINING),
#          as MB/s of the maildrop's octets (STAT's size)
#   RSS    the peak RSS (VmHWM) of the server process of the session
#          (pop3d; Dovecot's pop3 process), read before QUIT
# Each server gets a warm-up session first (Dovecot builds its index
# then). Warm: BENCH_ROUNDS (2) sessions each, alternating which goes
# first; cold: the same after dropping the page cache before each session.
# The best of the rounds counts. Only the ratio, in the same run, means
# anything. Needs root; loopback only; stops Dovecot again at the end.
set -eu
if [ -z "${BASH_VERSION:-}" ]; then exec bash "$0" "$@"; fi
PATH=/usr/sbin:/usr/bin:/sbin:/bin:$PATH
export PATH

top=$(cd "$(dirname "$0")/.." && pwd)
bin="${BENCH_BIN:-$top/target/release}"
dir="${BENCH_POP3_DIR:-$top/target/bench-pop3}"
messages=${BENCH_POP3_MESSAGES:-10000}
megabytes=${BENCH_POP3_MB:-250}
rounds=${BENCH_ROUNDS:-2}
ph_port=11996
dc_port=11995
timeout=${BENCH_POP3_TIMEOUT:-120}    # seconds, per session

say() { printf '%s\n' "== $*" >&2; }
die() { printf 'bench-pop3: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "must run as root (it installs and starts Dovecot)"
[ -x "$bin/pop3d" ] || die "$bin/pop3d is missing: run make build"
command -v systemd-socket-activate >/dev/null || die "systemd-socket-activate is missing"
command -v python3 >/dev/null || die "python3 is missing"

ssa_pid=
cleanup() {
    if [ -n "$ssa_pid" ]; then
        kill "$ssa_pid" 2>/dev/null || true
        wait "$ssa_pid" 2>/dev/null || true
        ssa_pid=
    fi
    sh "$top/scripts/bench-dovecot-setup.sh" down "$dir/dovecot" >&2 || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM
# A Dovecot left running from an earlier run killed hard stops before its
# directory goes.
sh "$top/scripts/bench-dovecot-setup.sh" down "$dir/dovecot" >&2

# ------------------------------------------------------------ the Maildir
# Made once into $dir/maildir (kept for the next run when the parameters
# match), then copied for each server.
src="$dir/maildir"
stamp="$messages messages, $megabytes MB, v1"
if [ "$(cat "$dir/maildir.stamp" 2>/dev/null)" != "$stamp" ]; then
    say "making a Maildir of $messages messages, $megabytes MB"
    rm -rf "$dir"
    mkdir -p "$src/new" "$src/cur" "$src/tmp"
    python3 - "$src" "$messages" "$megabytes" <<'PY'
import os, random, sys
d, n, mb = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = random.Random(4711)
# A pool of body text: prose, quoted replies, dotted lines, base64.
words = ("the of and to in is that for it as was with be by on not he this are "
         "or his from at which but have an they you were her she there one all "
         "mail queue delivery message server client maildir posthorn dovecot "
         "report build deploy invoice meeting tomorrow thanks regards").split()
lines = []
for i in range(120000):
    k = rng.random()
    if k < 0.60:
        lines.append(" ".join(rng.choice(words) for _ in range(rng.randint(3, 13))))
    elif k < 0.70:
        lines.append("> " + " ".join(rng.choice(words) for _ in range(rng.randint(3, 11))))
    elif k < 0.72:
        lines.append("." + " ".join(rng.choice(words) for _ in range(rng.randint(0, 6))))
    elif k < 0.80:
        lines.append("")
    else:
        lines.append("".join(rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")
                             for _ in range(76)))
pool = ("\n".join(lines) + "\n").encode()
# Sizes: most small, some medium, a few large; scaled to the total.
raw = []
for i in range(n):
    k = rng.random()
    if k < 0.80: raw.append(rng.uniform(2e3, 16e3))
    elif k < 0.95: raw.append(rng.uniform(16e3, 64e3))
    elif k < 0.99: raw.append(rng.uniform(64e3, 512e3))
    else: raw.append(rng.uniform(512e3, 4e6))
scale = mb * 1024 * 1024 / sum(raw)
host = "bench.test"
secs = 1700000000
total = 0
for i, r in enumerate(raw):
    secs += rng.randint(1, 300)
    usec = rng.randint(0, 999999)
    head = ("Return-Path: <sender%d@example.org>\n"
            "Delivered-To: bench@bench.test\n"
            "Received: from mx.example.org (mx.example.org [192.0.2.%d])\n"
            "\tby bench.test (Posthorn) with ESMTP id %08X\n"
            "\tfor <bench@bench.test>; Tue, 14 Nov 2023 22:13:20 +0000\n"
            "From: Sender %d <sender%d@example.org>\n"
            "To: Bench <bench@bench.test>\n"
            "Subject: message %d of the bench, about %s\n"
            "Date: Tue, 14 Nov 2023 22:13:20 +0000\n"
            "Message-ID: <%d.%d@example.org>\n"
            "MIME-Version: 1.0\n"
            "Content-Type: text/plain; charset=UTF-8\n\n"
            % (i % 97, i % 250, i, i % 97, i % 97, i, rng.choice(words), secs, i)).encode()
    want = max(len(head) + 100, int(r * scale))
    start = rng.randrange(0, len(pool) - want)
    start = pool.index(b"\n", start) + 1
    body = pool[start:start + want - len(head)]
    body = body[:body.rfind(b"\n") + 1]
    msg = head + body
    size = len(msg)
    crlf = size + msg.count(b"\n")
    total += size
    name = "%d.M%dP%dQ%dR%016x.%s,S=%d,W=%d" % (secs, usec, 1000 + i % 30000, i % 7 + 1,
                                               rng.getrandbits(64), host, size, crlf)
    if rng.random() < 0.15:
        path = os.path.join(d, "new", name)
    else:
        path = os.path.join(d, "cur", name + ":2,S")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.write(fd, msg)
    os.close(fd)
print("made %d messages, %.1f MB" % (n, total / 1048576), file=sys.stderr)
PY
    echo "$stamp" > "$dir/maildir.stamp"
fi

# ------------------------------------------------------------- the servers
ph="$dir/posthorn"
dc="$dir/dovecot"
rm -rf "$ph" "$dc"
mkdir -p "$ph/home/bench" "$dc/home/bench"
cp -a "$src" "$ph/home/bench/Maildir"
cp -a "$src" "$dc/home/bench/Maildir"
cat > "$ph/posthorn.toml" <<CONF
# A pop3d-only Posthorn instance: paths are relative to this file.
users = "users"
system_users = false
mailbox = "~/Maildir/"
log = "stderr"
user = "nobody"
CONF
echo "bench:{PLAIN}pw::::$ph/home/bench::" > "$ph/users"
chown -R nobody:nogroup "$ph"

sh "$top/scripts/bench-dovecot-setup.sh" up "$dc" "$dc_port" "$dc/home/bench" >&2
chown -R phbench-dc: "$dc/home"
dc_master=$(tr -dc 0-9 < "$dc/run/master.pid")

systemd-socket-activate -l "127.0.0.1:$ph_port" --inetd \
    -a "$bin/pop3d" -C "$ph/posthorn.toml" --no-flag-updates \
    < /dev/null > /dev/null 2>> "$ph/pop3d.log" &
ssa_pid=$!
i=0
until ss -ltn "sport = :$ph_port" | grep -q LISTEN; do
    i=$((i + 1)); [ $i -lt 50 ] || die "systemd-socket-activate did not listen on $ph_port"
    sleep 0.1
done
sync

# ------------------------------------------------------------- the client
# client.py PORT PPID COMM: one session; prints
# "login_ms stat_ms uidl_ms retr_s mb_per_s rss_kb messages octets
# octets-received-for-the-RETRs".
cat > "$dir/client.py" <<'PY'
import os, socket, sys, time
port, ppid, comm = int(sys.argv[1]), sys.argv[2], sys.argv[3]
s = socket.create_connection(("127.0.0.1", port), timeout=60)
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
buf = bytearray()
pos = 0
received = 0

def fill():
    global received
    chunk = s.recv(1 << 20)
    if not chunk:
        raise SystemExit("server closed the connection")
    received += len(chunk)
    buf.extend(chunk)

def line():
    global pos, buf
    while True:
        i = buf.find(b"\r\n", pos)
        if i >= 0:
            l = bytes(buf[pos:i]); pos = i + 2
            return l
        fill()

def multi(count=False):
    """One +OK multi-line reply, up to and with the final dot line; with
    count, the number of lines in it."""
    global pos, buf
    first = line()
    if not first.startswith(b"+OK"):
        raise SystemExit("unexpected reply: %r" % first[:80])
    # The reply's own CRLF is before pos: search from there.
    start = begin = pos - 2
    while True:
        i = buf.find(b"\r\n.\r\n", start)
        if i >= 0:
            lines = buf.count(b"\r\n", begin + 2, i + 2) if count else 0
            pos = i + 5
            if pos > 1 << 22:
                del buf[:pos]; pos = 0
            return lines
        start = max(start, len(buf) - 4)
        fill()

def ok(l):
    if not l.startswith(b"+OK"):
        raise SystemExit("unexpected reply: %r" % l[:80])
    return l

def server_pid():
    """The newest process named comm whose parent is ppid."""
    best = None
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % p) as f:
                st = f.read()
        except OSError:
            continue
        name = st[st.index("(") + 1:st.rindex(")")]
        fields = st[st.rindex(")") + 2:].split()
        if name == comm and fields[1] == ppid:
            start = int(fields[19])
            if best is None or start > best[0]:
                best = (start, p)
    return best and best[1]

def hwm(pid):
    try:
        with open("/proc/%s/status" % pid) as f:
            for l in f:
                if l.startswith("VmHWM:"):
                    return int(l.split()[1])
    except (OSError, TypeError):
        pass
    return 0

t0 = time.perf_counter()
ok(line())
s.sendall(b"USER bench\r\n"); ok(line())
s.sendall(b"PASS pw\r\n"); ok(line())
t1 = time.perf_counter()
s.sendall(b"STAT\r\n"); st = ok(line()).split()
t2 = time.perf_counter()
n, octets = int(st[1]), int(st[2])
s.sendall(b"UIDL\r\n"); uidls = multi(count=True)
t3 = time.perf_counter()
if uidls != n:
    raise SystemExit("UIDL listed %d of %d" % (uidls, n))
pid = server_pid()
before = received
window, sent, got = 16, 0, 0
while got < n:
    if sent - got < window // 2 and sent < n:
        k = min(n, got + window)
        s.sendall(b"".join(b"RETR %d\r\n" % i for i in range(sent + 1, k + 1)))
        sent = k
    multi()
    got += 1
t4 = time.perf_counter()
rss = hwm(pid)
s.sendall(b"QUIT\r\n"); ok(line())
s.close()
print("%.1f %.1f %.1f %.3f %.1f %d %d %d %d" % (
    (t1 - t0) * 1e3, (t2 - t1) * 1e3, (t3 - t2) * 1e3, t4 - t3,
    octets / (t4 - t3) / 1e6, rss, n, octets, received - before))
PY

# session ph|dc - one measured session; sets $result (or "failed").
session() {
    local port ppid comm
    case $1 in
        ph) port=$ph_port ppid=$ssa_pid comm=pop3d ;;
        dc) port=$dc_port ppid=$dc_master comm=pop3 ;;
    esac
    if ! result=$(timeout "$timeout" python3 "$dir/client.py" "$port" "$ppid" "$comm"); then
        say "  $1: the session failed"
        result=failed
    fi
}

declare -A best
# keep SYS KIND RESULT - fold one session's result into the best so far.
keep() {
    local k
    [ "$3" != failed ] || return 0
    read -r login stat uidl retr mbs rss n octets recv <<< "$3"
    local ls
    ls=$(awk -v a="$login" -v b="$stat" 'BEGIN { printf "%.1f", a + b }')
    for k in login stat ls uidl rss; do
        local v=${!k} old=${best[$1.$2.$k]:-}
        if [ -z "$old" ] || awk -v a="$v" -v b="$old" 'BEGIN { exit !(a < b) }'; then
            best[$1.$2.$k]=$v
        fi
    done
    local old=${best[$1.$2.mbs]:-}
    if [ -z "$old" ] || awk -v a="$mbs" -v b="$old" 'BEGIN { exit !(a > b) }'; then
        best[$1.$2.mbs]=$mbs
    fi
    best[$1.recv]=$recv best[$1.octets]=$octets best[$1.n]=$n
}

name() { [ "$1" = ph ] && echo "pop3d   " || echo "dovecot "; }
report() {
    read -r login stat uidl retr mbs rss n octets recv <<< "$2"
    say "  $(name "$1") $3: login ${login} ms, STAT ${stat} ms, UIDL ${uidl} ms," \
        "RETR ${retr} s (${mbs} MB/s), RSS ${rss} kB; $n messages, $octets octets, $recv sent by RETR"
}

started=$SECONDS
say "load average before: $(cut -d' ' -f1-3 /proc/loadavg); $(nproc) cores"
say "warm-up session on each (Dovecot builds its index)"
for sys in ph dc; do session $sys; [ "$result" = failed ] || report $sys "$result" warm-up; done
say "warm: $rounds round(s)"
for r in $(seq 1 "$rounds"); do
    for sys in $( [ $((r % 2)) = 1 ] && echo "ph dc" || echo "dc ph"); do
        session $sys; keep $sys warm "$result"
        [ "$result" = failed ] || report $sys "$result" warm
    done
done
cold=yes
if ! sync || ! echo 3 > /proc/sys/vm/drop_caches 2>/dev/null; then
    say "cannot drop the page cache (/proc/sys/vm/drop_caches): no cold runs"
    cold=
fi
if [ -n "$cold" ]; then
    say "cold (page cache dropped before each session): $rounds round(s)"
    for r in $(seq 1 "$rounds"); do
        for sys in $( [ $((r % 2)) = 1 ] && echo "dc ph" || echo "ph dc"); do
            sync; echo 3 > /proc/sys/vm/drop_caches
            session $sys; keep $sys cold "$result"
            [ "$result" = failed ] || report $sys "$result" cold
        done
    done
fi
say "done in $((SECONDS - started))s; load average after: $(cut -d' ' -f1-3 /proc/loadavg)"

# ratio A B - A/B as N.NNx, or "-" when either is missing.
ratio() {
    awk -v a="$1" -v b="$2" 'BEGIN {
        if (a !~ /^[0-9.]+$/ || b !~ /^[0-9.]+$/ || b == 0) print "-"
        else printf "%.2fx", a / b }'
}
row() { # row LABEL KIND KEY UNIT
    local a=${best[ph.$2.$3]:--} b=${best[dc.$2.$3]:--}
    printf '%-34s %8s %-5s %8s %-5s %8s\n' "$1" "$a" "$4" "$b" "$4" "$(ratio "$a" "$b")"
}
echo
printf '%-34s %14s %14s %8s\n' "pop3 ($messages msgs, $megabytes MB)" pop3d dovecot ratio
for kind in warm ${cold:+cold}; do
    row "login (connect to PASS +OK), $kind" $kind login ms
    row "STAT, $kind" $kind stat ms
    row "login+STAT, $kind" $kind ls ms
    row "UIDL, $kind" $kind uidl ms
    row "RETR all, $kind" $kind mbs MB/s
    row "peak RSS of the server, $kind" $kind rss kB
done
echo
echo "ratio = pop3d / dovecot (ms, kB: lower is better; MB/s: higher is faster)."
echo "Best of $rounds session(s) each, after a warm-up session; one raw-socket client, 16 RETRs in flight."
[ -n "$cold" ] || echo "No cold rows: the page cache could not be dropped."
echo "Logs: $ph/pop3d.log, $dc/dovecot.log"
