#!/bin/bash
# bench-login.sh (run by make bench after bench-imap.sh, or alone): what
# a login costs, imapd beside Dovecot, both over real sockets on
# loopback and both with their privilege separation: imapd started as
# root per connection by systemd-socket-activate --inetd (its pre-login
# process, its password check and its session; see imapd(8)), Dovecot
# as a whole server of its own (master, imap-login, auth, imap), from a
# configuration file under DIR that owns nothing outside DIR: its own
# base_dir, state_dir and log, plaintext IMAP and IMAPS on loopback
# ports only. Debian's Dovecot service is never touched.
#
# The mailboxes belong to a test account, benchli; BENCH_LOGIN_USERS
# (10) users bench0..bench9 (password pw) log in, each with a Maildir of
# its own holding BENCH_LOGIN_MESSAGES (100) small messages, and bench0
# one of BENCH_LOGIN_BIG_MB (20) MB too. Each server has its own copy.
#
# Loads, each server in turn, BENCH_ROUNDS (2) rounds alternating which
# goes first, the best round counting:
#   login      connect until the tagged OK of LOGIN, median of
#              BENCH_LOGIN_SESSIONS (100) sessions one after another,
#              plaintext and implicit TLS
#   TLS MB/s   FETCH BODY.PEEK[] of the big message over implicit TLS
#   many       BENCH_LOGIN_CLIENTS (10) clients at once for
#              BENCH_LOGIN_SECONDS (15) s, each over and over on a new
#              connection: LOGIN, SELECT INBOX, FETCH 1:* (FLAGS),
#              APPEND, FETCH of the new message, STORE +FLAGS \Deleted,
#              EXPUNGE, LOGOUT; tagged replies per second, all clients
#              together (each must be OK)
# And once per server:
#   memory     BENCH_LOGIN_IDLE (50) sessions logged in with INBOX
#              selected, then quiet, plaintext and TLS: the Pss and the
#              private memory of every process the server runs, less
#              the same with no session, per session
# Only the ratio, measured in the same run, means anything. Needs root.
set -eu
if [ -z "${BASH_VERSION:-}" ]; then exec bash "$0" "$@"; fi
PATH=/usr/sbin:/usr/bin:/sbin:/bin:$PATH
export PATH

top=$(cd "$(dirname "$0")/.." && pwd)
bin="$top/target/release"
dir="${BENCH_LOGIN_DIR:-$top/target/bench-login}"
users=${BENCH_LOGIN_USERS:-10}
messages=${BENCH_LOGIN_MESSAGES:-100}
big_mb=${BENCH_LOGIN_BIG_MB:-20}
rounds=${BENCH_ROUNDS:-2}
sessions=${BENCH_LOGIN_SESSIONS:-100}
clients=${BENCH_LOGIN_CLIENTS:-10}
seconds=${BENCH_LOGIN_SECONDS:-15}
idle=${BENCH_LOGIN_IDLE:-50}
owner=benchli
ph_plain=11943
ph_tls=11993
dc_plain=11942
dc_tls=11992

say() { printf '%s\n' "== $*" >&2; }
die() { printf 'bench-login: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "must run as root (imapd's privilege separation, Dovecot's own master)"
[ -x "$bin/imapd" ] || die "$bin/imapd is missing: run make build"
[ -x /usr/sbin/dovecot ] && [ -x /usr/lib/dovecot/imap-login ] ||
    die "Dovecot's IMAP server is missing: apt-get install dovecot-imapd"
command -v systemd-socket-activate >/dev/null || die "systemd-socket-activate is missing"
command -v openssl >/dev/null || die "openssl is missing"
command -v python3 >/dev/null || die "python3 is missing"
getent passwd dovenull >/dev/null || die "Dovecot's dovenull account is missing (dovecot-core makes it)"

mkdir -p "$dir"
ssa=()
cleanup() {
    local p
    for p in "${ssa[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
    dc_stop || true
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# dc_stop - stop the Dovecot started from $dir/dovecot.conf, if any, and
# wait (bounded) until its master has exited.
dc_stop() {
    local pid i=0
    pid=$(tr -dc 0-9 2>/dev/null < "$dir/dc-run/master.pid" || true)
    [ -n "$pid" ] || return 0
    if [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = dovecot ]; then
        kill "$pid" 2>/dev/null || true
        while [ -d "/proc/$pid" ]; do
            i=$((i + 1))
            [ $i != 50 ] || kill -9 "$pid" 2>/dev/null || true
            [ $i -lt 100 ] || return 1
            sleep 0.1
        done
    fi
    rm -f "$dir/dc-run/master.pid"
}

# wait_port - a bounded wait until something listens on 127.0.0.1:$1.
wait_port() {
    local i=0
    until python3 -c 'import socket,sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 1).close()' "$1" 2>/dev/null; do
        i=$((i + 1)); [ $i -lt 100 ] || die "nothing listens on port $1"; sleep 0.1
    done
}

getent passwd "$owner" >/dev/null ||
    useradd -M -d /nonexistent -s /usr/sbin/nologin "$owner"
uid=$(id -u "$owner"); gid=$(id -g "$owner")

if [ ! -f "$dir/made-$users-$messages-$big_mb" ]; then
    say "making $users Maildirs of $messages messages (and one of $big_mb MB) in $dir/seed"
    rm -rf "$dir/seed"
    python3 - "$dir/seed" "$users" "$messages" "$big_mb" <<'PY'
import os, random, sys
root, users, n, big = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
random.seed(11)
words = "the of and to in mail server message folder client index cache flag uid".split()
for u in range(users):
    md = os.path.join(root, f"bench{u}", "Maildir")
    for s in ("new", "cur", "tmp"):
        os.makedirs(os.path.join(md, s), exist_ok=True)
    count = n + (1 if u == 0 else 0)
    for i in range(count):
        body = "\n".join(" ".join(random.choice(words) for _ in range(12)) for _ in range(random.randint(5, 40)))
        if i == n:
            line = "x" * 76 + "\n"
            body = line * (big * 1024 * 1024 // len(line))
        data = (f"From: s{i}@example.org\nTo: bench{u}@bench.test\nSubject: message {i}\n"
                f"Message-ID: <{u}.{i}@bench.test>\nDate: Tue, 14 Nov 2023 10:00:00 +0000\n\n{body}\n").encode()
        t = 1_700_000_000 + i
        name = f"{t}.M{i}P1Q{i}R{u:04x}{i:08x}.bench,S={len(data)}:2,S"
        with open(os.path.join(md, "cur", name), "wb") as f:
            f.write(data)
PY
    touch "$dir/made-$users-$messages-$big_mb"
fi

# fresh - each server's own copy of the Maildirs, as the last run left none.
fresh() {
    local s=$1 u
    rm -rf "${dir:?}/$s"
    mkdir -p "$dir/$s"
    cp -a "$dir/seed/." "$dir/$s/"
    : > "$dir/$s/users"
    for ((u = 0; u < users; u++)); do
        echo "bench$u:{PLAIN}pw:$uid:$gid::$dir/$s/bench$u::" >> "$dir/$s/users"
    done
    chown -R "$owner:" "$dir/$s"
    chown root: "$dir/$s/users"
}
fresh posthorn
fresh dovecot
chmod 711 "$dir"
chgrp dovecot "$dir/dovecot/users"; chmod 640 "$dir/dovecot/users"

if [ ! -f "$dir/cert.pem" ]; then
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
        -subj /CN=bench.test -keyout "$dir/key.pem" -out "$dir/cert.pem" 2>/dev/null
fi
chmod 600 "$dir/key.pem"

# ------------------------------------------------------------- Posthorn
# The pre-login process runs as nobody, the session as benchli.
cat > "$dir/posthorn.toml" <<EOF
hostname = "bench.test"
users = "posthorn/users"
system_users = false
mailbox = "~/Maildir/"
log = "stderr"
user = "nobody"
login_user = "nobody"
[tls]
cert = "cert.pem"
key = "key.pem"
[auth]
first_valid_uid = $uid
[imap]
folders = []
EOF
for args in "$ph_plain" "$ph_tls --tls"; do
    set -- $args
    systemd-socket-activate --inetd -a -l "127.0.0.1:$1" \
        "--setenv=POSTHORN_CONFIG=$dir/posthorn.toml" "$bin/imapd" ${2:-} 2>>"$dir/imapd.log" &
    ssa+=($!)
done

# -------------------------------------------------------------- Dovecot
dc_stop
mkdir -p "$dir/dc-run" "$dir/dc-state"
cat > "$dir/dovecot.conf" <<EOF
# Written by scripts/bench-login.sh: a bench-only Dovecot.
protocols = imap
listen = 127.0.0.1
base_dir = $dir/dc-run
state_dir = $dir/dc-state
log_path = $dir/dovecot.log
ssl = yes
ssl_cert = <$dir/cert.pem
ssl_key = <$dir/key.pem
disable_plaintext_auth = no
auth_mechanisms = plain login
first_valid_uid = $uid
last_valid_uid = $uid
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%u $dir/dovecot/users
}
userdb {
  driver = passwd-file
  args = username_format=%u $dir/dovecot/users
}
mail_location = maildir:~/Maildir
service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = $dc_plain
  }
  inet_listener imaps {
    address = 127.0.0.1
    port = $dc_tls
    ssl = yes
  }
}
service pop3-login {
  inet_listener pop3 {
    port = 0
  }
  inet_listener pop3s {
    port = 0
  }
}
service submission-login {
  inet_listener submission {
    port = 0
  }
}
EOF
doveconf -c "$dir/dovecot.conf" -n >/dev/null
dovecot -c "$dir/dovecot.conf"
for p in $ph_plain $ph_tls $dc_plain $dc_tls; do wait_port "$p"; done

say "imapd beside Dovecot $(dovecot --version | cut -d' ' -f1): logins, TLS, $clients clients at once, memory"
python3 - "$dir" "$rounds" "$sessions" "$clients" "$seconds" "$idle" "$users" "${ssa[0]}" "${ssa[1]}" \
    "$ph_plain" "$ph_tls" "$dc_plain" "$dc_tls" <<'PY'
import multiprocessing, os, socket, ssl, statistics, sys, time
d = sys.argv[1]
rounds, nsess, nclients, secs, nidle, nusers = map(int, sys.argv[2:8])
ssa = [int(sys.argv[8]), int(sys.argv[9])]
ports = {"posthorn": (int(sys.argv[10]), int(sys.argv[11])), "dovecot": (int(sys.argv[12]), int(sys.argv[13]))}
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE

class Conn:
    """Conn - one IMAP connection, raw: greeting read, tagged commands."""
    def __init__(self, port, tls):
        s = socket.create_connection(("127.0.0.1", port))
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if tls:
            s = ctx.wrap_socket(s)
        self.s, self.f, self.n = s, s.makefile("rb"), 0
        if not self.f.readline().startswith(b"* OK"):
            raise SystemExit(f"port {port}: no greeting")

    def cmd(self, c, literal=None):
        self.n += 1
        tag = b"a%d" % self.n
        if literal is None:
            self.s.sendall(tag + b" " + c + b"\r\n")
        else:
            self.s.sendall(tag + b" " + c + b" {%d+}\r\n" % len(literal) + literal + b"\r\n")
        size = 0
        while True:
            line = self.f.readline()
            if not line:
                raise SystemExit(f"connection closed after {c!r}")
            size += len(line)
            while line.rstrip().endswith(b"}") and b"{" in line:
                k = int(line.rstrip()[line.rstrip().rindex(b"{") + 1:-1])
                size += len(self.f.read(k))
                line = self.f.readline()
            if line.startswith(tag + b" "):
                if not line.startswith(tag + b" OK"):
                    raise SystemExit(f"{c!r}: {line!r}")
                return size

    def close(self):
        try:
            self.cmd(b"LOGOUT")
        except SystemExit:
            pass
        self.s.close()

def login_ms(which, tls):
    """login_ms - median ms from connect to LOGIN's OK, nsess sessions."""
    port = ports[which][1 if tls else 0]
    got = []
    for i in range(nsess):
        t = time.perf_counter()
        c = Conn(port, tls)
        c.cmd(b"LOGIN bench%d pw" % (i % nusers))
        got.append(time.perf_counter() - t)
        c.close()
    return statistics.median(got) * 1000

def tls_mbs(which):
    """tls_mbs - FETCH of bench0's big message over implicit TLS, MB/s."""
    c = Conn(ports[which][1], True)
    c.cmd(b"LOGIN bench0 pw")
    c.cmd(b"SELECT INBOX")
    best = 0
    for _ in range(3):
        t = time.perf_counter()
        n = c.cmd(b"UID FETCH *:* BODY.PEEK[]")
        best = max(best, n / (time.perf_counter() - t) / 1e6)
    c.close()
    return best

MSG = (b"From: load@example.org\r\nTo: bench@bench.test\r\nSubject: load\r\n"
       b"Message-ID: <load@bench.test>\r\n\r\n" + b"a line of text in the message body\r\n" * 40)

def client(args):
    """client - one of the many: whole sessions over and over until the
    end time; the tagged replies it got."""
    port, user, until = args
    done = 0
    while time.time() < until:
        c = Conn(port, False)
        c.cmd(b"LOGIN bench%d pw" % user)
        c.cmd(b"SELECT INBOX")
        c.cmd(b"FETCH 1:* (FLAGS)")
        c.cmd(b"APPEND INBOX", MSG)
        c.cmd(b"FETCH * (BODY.PEEK[])")
        c.cmd(b"STORE * +FLAGS.SILENT (\\Deleted)")
        c.cmd(b"EXPUNGE")
        c.cmd(b"LOGOUT")
        c.s.close()
        done += 8
    return done

def many(which):
    """many - nclients at once for secs seconds: tagged replies per second."""
    until = time.time() + secs
    t = time.perf_counter()
    with multiprocessing.Pool(nclients) as p:
        n = sum(p.map(client, [(ports[which][0], u % nusers, until) for u in range(nclients)]))
    return n / (time.perf_counter() - t)

def children():
    """children - pid -> list of child pids, from /proc."""
    kids = {}
    for e in os.listdir("/proc"):
        if e.isdigit():
            try:
                with open(f"/proc/{e}/stat") as f:
                    pp = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            kids.setdefault(pp, []).append(int(e))
    return kids

def tree(pid):
    kids, out, todo = children(), [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out

def smaps(pid):
    """smaps - (Pss, private) of a process in kB; (0, 0) when it is gone."""
    pss = priv = 0
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for l in f:
                k = l.split(":")[0]
                if k == "Pss":
                    pss += int(l.split()[1])
                elif k in ("Private_Clean", "Private_Dirty"):
                    priv += int(l.split()[1])
    except OSError:
        pass
    return pss, priv

def server_pids(which):
    if which == "posthorn":
        return [p for s in ssa for p in tree(s) if p not in ssa]
    with open(f"{d}/dc-run/master.pid") as f:
        return tree(int(f.read().strip()))

def memory(which, tls):
    """memory - nidle sessions logged in and quiet: per session MiB (Pss,
    private) of the server's processes over those with no session."""
    def total():
        time.sleep(1)
        ps = [smaps(p) for p in server_pids(which)]
        return sum(p[0] for p in ps), sum(p[1] for p in ps)
    base = total()
    cs = []
    try:
        for i in range(nidle):
            c = Conn(ports[which][1 if tls else 0], tls)
            c.cmd(b"LOGIN bench%d pw" % (i % nusers))
            c.cmd(b"SELECT INBOX")
            cs.append(c)
        now = total()
    finally:
        for c in cs:
            c.close()
    return tuple((now[k] - base[k]) / 1024 / nidle for k in (0, 1))

best = {}
def keep(k, v, bigger):
    if k not in best or (v > best[k] if bigger else v < best[k]):
        best[k] = v

for which in ("posthorn", "dovecot"):   # warm-up: Dovecot's indexes, the page cache
    many_secs, secs = secs, 2
    many(which)
    secs = many_secs
for r in range(rounds):
    for which in (("posthorn", "dovecot") if r % 2 == 0 else ("dovecot", "posthorn")):
        keep((which, "login plain ms"), login_ms(which, False), False)
        keep((which, "login TLS ms"), login_ms(which, True), False)
        keep((which, "TLS MB/s"), tls_mbs(which), True)
        keep((which, "many cmd/s"), many(which), True)
for which in ("posthorn", "dovecot"):
    best[(which, "mem plain")] = memory(which, False)
    best[(which, "mem TLS")] = memory(which, True)

print(f"{'load':<22}{'imapd':>10}{'Dovecot':>10}{'ratio':>8}")
for k in ("login plain ms", "login TLS ms", "TLS MB/s", "many cmd/s"):
    p, dc = best[("posthorn", k)], best[("dovecot", k)]
    print(f"{k:<22}{p:>10.1f}{dc:>10.1f}{p / dc:>8.2f}")
for k in ("mem plain", "mem TLS"):
    for i, q in enumerate(("Pss", "private")):
        p, dc = best[("posthorn", k)][i], best[("dovecot", k)][i]
        print(f"{k + ' ' + q + ' MiB/sess':<22}{p:>10.2f}{dc:>10.2f}{(p / dc if dc else 0):>8.2f}")
print(f"many: {nclients} clients at once, {secs} s, LOGIN SELECT FETCH APPEND FETCH STORE EXPUNGE LOGOUT per connection; ratio imapd/Dovecot")
r = best[("posthorn", "many cmd/s")] / best[("dovecot", "many cmd/s")]
print(f"many: imapd does {r:.2f} times Dovecot's command rate (issue 14 wants at least 1.3)")
PY
