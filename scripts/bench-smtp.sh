#!/bin/bash
# bench-smtp.sh (run by make bench after the POP3 loads): Posthorn's smtpd
# beside Postfix's, on this machine, in one run.
#
# The load is Postfix's own client, smtp-source: BENCH_SMTP_MESSAGES (2000)
# messages of 4 KiB (-l 4096), 20 sessions at a time (-s 20), a new
# connection per message, all to one local recipient. Two times per run:
#   accepted   until smtp-source has its last 250 (every message durable in
#              the queue, since both servers fsync before the 250)
#   delivered  until the last message file is in the recipient's Maildir
# smtpd runs one process per connection through systemd-socket-activate
# --inetd -a on 127.0.0.1:11997, started as root (it drops to nobody), with
# qrun delivering; Postfix is the bench's own instance of
# scripts/bench-postfix-setup.sh, in target/bench-postfix/ (its smtpd on
# 127.0.0.1:11925, processes reused by its master as usual), stopped again
# at the end; the machine's own Postfix is not touched. Memory per
# session: one session held open after EHLO, and the server process's RSS
# and its private memory (Private_Clean + Private_Dirty from smaps_rollup:
# what one more session really costs) read from /proc.
# BENCH_ROUNDS (2) rounds, alternating which goes first; the best counts.
# Only the ratio, in the same run, means anything. Needs root.
set -eu
if [ -z "${BASH_VERSION:-}" ]; then exec bash "$0" "$@"; fi
PATH=/usr/sbin:/usr/bin:/sbin:/bin:$PATH
export PATH

top=$(cd "$(dirname "$0")/.." && pwd)
bin="${BENCH_BIN:-$top/target/release}"
inst="${BENCH_SMTP_DIR:-$top/target/bench-smtp}"
conf="$inst/posthorn.toml"
domain=bench.test
messages=${BENCH_SMTP_MESSAGES:-2000}
rounds=${BENCH_ROUNDS:-2}
timeout=${BENCH_SMTP_TIMEOUT:-120}
ph_port=11997
pf_port=11925
pf_dir="${BENCH_POSTFIX_DIR:-$top/target/bench-postfix}"
pf_user=phbench-pf

say() { printf '%s\n' "== $*" >&2; }
die() { printf 'bench-smtp: %s\n' "$*" >&2; exit 1; }
now() { date +%s.%N; }

[ "$(id -u)" = 0 ] || die "must run as root (it installs and starts Postfix)"
for b in smtpd enqueue qrun deliver; do
    [ -x "$bin/$b" ] || die "$bin/$b is missing: run make build"
done
command -v systemd-socket-activate >/dev/null || die "systemd-socket-activate is missing"
command -v python3 >/dev/null || die "python3 is missing"

qrun_pid= ssa_pid=
cleanup() {
    [ -z "$ssa_pid" ] || { kill "$ssa_pid" 2>/dev/null || true; wait "$ssa_pid" 2>/dev/null || true; }
    [ -z "$qrun_pid" ] || kill "$qrun_pid" 2>/dev/null || true
    ssa_pid= qrun_pid=
    sh "$top/scripts/bench-postfix-setup.sh" down "$pf_dir" || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

sh "$top/scripts/bench-postfix-setup.sh" up "$pf_dir" "$pf_port"
[ -x /usr/sbin/smtp-source ] || die "smtp-source is missing (Debian's postfix package)"
pf_conf="$pf_dir/conf"
pf_maildir="$pf_dir/home/Maildir"

# The Posthorn instance: qrun and smtpd (MX mode) for bench@bench.test.
rm -rf "$inst"
mkdir -p "$inst/home/bench"
cat > "$conf" <<CONF
hostname = "$domain"
spool = "spool"
users = "users"
system_users = false
aliases = ""
log = "stderr"
libexec = "$bin"
user = "nobody"
CONF
echo "bench:{PLAIN}x::::$inst/home/bench::" > "$inst/users"
chown -R nobody:nogroup "$inst"
"$bin/qrun" -C "$conf" 2> "$inst/qrun.log" &
i=0
while [ ! -s "$inst/spool/qrun.lock" ]; do
    i=$((i + 1)); [ $i -lt 100 ] || die "qrun did not start"; sleep 0.05
done
qrun_pid=$(cat "$inst/spool/qrun.lock")
systemd-socket-activate --inetd -a -l "127.0.0.1:$ph_port" "$bin/smtpd" -C "$conf" \
    < /dev/null > /dev/null 2> "$inst/smtpd.log" &
ssa_pid=$!
i=0
until python3 -c "import socket,sys; socket.create_connection(('127.0.0.1', $ph_port), 1).close()" 2>/dev/null; do
    i=$((i + 1)); [ $i -lt 100 ] || die "smtpd's listener did not come up"; sleep 0.05
done

count_new() { ls -U "$1" 2>/dev/null | wc -l; }

pf_wait_idle() {
    local i=0
    while ! postqueue -c "$pf_conf" -p 2>/dev/null | grep -q 'Mail queue is empty'; do
        i=$((i + 1)); [ $i -lt 300 ] || return 0; sleep 0.1
    done
}

# load NAME PORT RCPT MAILDIR: prints "accepted_secs delivered_secs".
load() {
    local name=$1 port=$2 rcpt=$3 maildir=$4 t0 t1 t2 deadline
    t0=$(now)
    smtp-source -s 20 -m "$messages" -l 4096 -f "robot@$domain" -t "$rcpt" \
        -M "$domain" "127.0.0.1:$port" >/dev/null 2>&1 || say "$name: smtp-source reported errors"
    t1=$(now)
    deadline=$((SECONDS + timeout))
    while [ "$(count_new "$maildir/new")" -lt "$messages" ] && [ $SECONDS -lt $deadline ]; do
        sleep 0.02
    done
    t2=$(now)
    got=$(count_new "$maildir/new")
    [ "$got" = "$messages" ] || say "$name: only $got of $messages delivered"
    awk -v a="$t0" -v b="$t1" -v c="$t2" 'BEGIN { printf "%.3f %.3f\n", b - a, c - a }'
}

ph_run() { rm -rf "$inst/home/bench/Maildir"; load posthorn $ph_port "bench@$domain" "$inst/home/bench/Maildir"; }
pf_run() { pf_wait_idle; rm -rf "$pf_maildir"; load postfix $pf_port "$pf_user@$domain" "$pf_maildir"; }

best() { sort -n | head -n 1; }
ph_acc=() ph_del=() pf_acc=() pf_del=()
for r in $(seq 1 "$rounds"); do
    for who in $( [ $((r % 2)) = 1 ] && echo "ph pf" || echo "pf ph"); do
        say "round $r: $who"
        set -- $(${who}_run)
        eval "${who}_acc+=($1) ${who}_del+=($2)"
    done
done
ph_a=$(printf '%s\n' "${ph_acc[@]}" | best); ph_d=$(printf '%s\n' "${ph_del[@]}" | best)
pf_a=$(printf '%s\n' "${pf_acc[@]}" | best); pf_d=$(printf '%s\n' "${pf_del[@]}" | best)

# Memory: one session held after EHLO; the server process's memory.
held_rss() {
    local port=$1 pick=$2
    python3 - "$port" "$pick" <<'PY'
import os, socket, subprocess, sys, time
port, pick = int(sys.argv[1]), sys.argv[2]
s = socket.create_connection(("127.0.0.1", port), 5)
f = s.makefile("rb")
f.readline()
s.sendall(b"EHLO bench.client\r\n")
while f.readline()[3:4] == b"-":
    pass
time.sleep(0.2)
# The server process: the one whose socket's peer is us.
me = "%s:%d" % s.getsockname()
out = subprocess.run(["ss", "-Htnp", "state", "established", "dst", me],
                     capture_output=True, text=True).stdout
pid = None
for part in out.split("pid=")[1:]:
    pid = int(part.split(",")[0])
def kb(path, keys):
    total = 0
    for line in open(path):
        k = line.split(":")[0]
        if k in keys:
            total += int(line.split()[1])
    return total
rss = kb("/proc/%d/status" % pid, {"VmRSS"})
priv = kb("/proc/%d/smaps_rollup" % pid, {"Private_Clean", "Private_Dirty"})
print(rss, priv)
s.sendall(b"QUIT\r\n")
PY
}
set -- $(held_rss $ph_port posthorn); ph_rss=$1 ph_priv=$2
set -- $(held_rss $pf_port postfix); pf_rss=$1 pf_priv=$2

rate() { awk -v n="$messages" -v t="$1" 'BEGIN { printf "%.0f", n / t }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
echo
echo "smtpd: $messages messages of 4 KiB by smtp-source -s 20, a connection per message (best of $rounds)"
printf '  %-22s %12s %12s %8s\n' "" posthorn postfix ratio
printf '  %-22s %12s %12s %8s\n' "accepted msg/s" "$(rate "$ph_a")" "$(rate "$pf_a")" "$(ratio "$pf_a" "$ph_a")"
printf '  %-22s %12s %12s %8s\n' "delivered msg/s" "$(rate "$ph_d")" "$(rate "$pf_d")" "$(ratio "$pf_d" "$ph_d")"
printf '  %-22s %12s %12s %8s\n' "session RSS kB" "$ph_rss" "$pf_rss" "$(ratio "$pf_rss" "$ph_rss")"
printf '  %-22s %12s %12s %8s\n' "session private kB" "$ph_priv" "$pf_priv" "$(ratio "$pf_priv" "$ph_priv")"
echo "  (ratio: how many times Posthorn is ahead; above 1 is better)"
