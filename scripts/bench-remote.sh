#!/bin/bash
# bench-remote.sh (run by make bench): Posthorn's remote delivery beside
# Postfix's smtp client, on this machine, in one run.
#
# The load: BENCH_REMOTE_MESSAGES (2000) messages of 4 KiB, already in the
# queue, relayed to a local smtp-sink (Postfix's test server, one per
# system, loopback only) with 20 connections at a time. The clock runs
# from the start of the queue run until the queue is empty:
#   posthorn  qrun -o with queue.parallel = 20 and relayhost = the sink;
#             one remote(8) run, one connection, per message
#   postfix   the bench's own instance of scripts/bench-postfix-setup.sh
#             (target/bench-postfix/) with relayhost = the sink and a
#             destination concurrency of 20; the messages wait in its
#             deferred queue (defer_transports = smtp) until postqueue -f,
#             so only delivery is timed
# Both count "status=sent" in their logs afterwards. BENCH_ROUNDS (2)
# rounds, alternating which goes first; the best counts. Only the ratio,
# in the same run, means anything. Needs root. The settings above are
# made in the instance's own main.cf; the instance and the sinks are
# stopped at the end, and the machine's own Postfix is not touched.
set -eu
if [ -z "${BASH_VERSION:-}" ]; then exec bash "$0" "$@"; fi
PATH=/usr/sbin:/usr/bin:/sbin:/bin:$PATH
export PATH

top=$(cd "$(dirname "$0")/.." && pwd)
bin="${BENCH_BIN:-$top/target/release}"
inst="${BENCH_REMOTE_DIR:-$top/target/bench-remote}"
conf="$inst/posthorn.toml"
domain=bench.test
messages=${BENCH_REMOTE_MESSAGES:-2000}
rounds=${BENCH_ROUNDS:-2}
timeout=${BENCH_REMOTE_TIMEOUT:-300}
ph_sink=11998
pf_sink=11999
pf_port=11925
pf_dir="${BENCH_POSTFIX_DIR:-$top/target/bench-postfix}"
pf_conf="$pf_dir/conf"
pf_log="$pf_dir/postfix.log"
rcpt=sink@far.example

say() { printf '%s\n' "== $*" >&2; }
die() { printf 'bench-remote: %s\n' "$*" >&2; exit 1; }
now() { date +%s.%N; }

[ "$(id -u)" = 0 ] || die "must run as root (it installs and starts Postfix)"
for b in sendmail enqueue qrun remote; do
    [ -x "$bin/$b" ] || die "$bin/$b is missing: run make build"
done
sinks=
cleanup() {
    for p in $sinks; do kill "$p" 2>/dev/null || true; done
    sh "$top/scripts/bench-postfix-setup.sh" down "$pf_dir" || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

sh "$top/scripts/bench-postfix-setup.sh" up "$pf_dir" "$pf_port"
[ -x /usr/sbin/smtp-sink ] || die "smtp-sink is missing (Debian's postfix package)"

for port in $ph_sink $pf_sink; do
    smtp-sink -u nobody "127.0.0.1:$port" 256 &
    sinks="$sinks $!"
done

# A 4 KiB message.
msg="$inst.msg"
mkdir -p "$(dirname "$msg")"
{
    printf 'Subject: bench\n\n'
    i=0
    while [ $i -lt 56 ]; do
        printf '%s\n' "the quick brown fox jumps over the lazy dog 0123456789 abcdefghijklm"
        i=$((i + 1))
    done
} > "$msg"

# The Posthorn instance: relayhost is the sink, 20 deliveries at a time.
ph_setup() {
    rm -rf "$inst"
    mkdir -p "$inst"
    cat > "$conf" <<CONF
hostname = "$domain"
spool = "spool"
system_users = false
aliases = ""
log = "stderr"
libexec = "$bin"
user = "nobody"
relayhost = "[127.0.0.1]:$ph_sink"
[relay]
tls_required = false
[queue]
parallel = 20
[smtp]
destination_concurrency = 20
CONF
    chown -R nobody:nogroup "$inst"
    "$bin/qrun" -C "$conf" -o 2>/dev/null || die "qrun could not make the spool"
    local i=0
    while [ $i -lt "$messages" ]; do
        "$bin/sendmail" -C "$conf" -i -f "robot@$domain" "$rcpt" < "$msg" || die "sendmail failed"
        i=$((i + 1))
    done
}

# ph_run: prints the seconds the queue took.
ph_run() {
    ph_setup
    local t0 t1 sent
    t0=$(now)
    "$bin/qrun" -C "$conf" -o 2> "$inst.qrun.log"
    t1=$(now)
    sent=$(grep -c 'status=sent' "$inst.qrun.log" || true)
    [ "$sent" = "$messages" ] || say "posthorn: $sent of $messages sent"
    awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f\n", b - a }'
}

pf_queued() { postqueue -c "$pf_conf" -p 2>/dev/null | awk '/^-- /{ print $5; f=1 } END { if (!f) print 0 }'; }

pf_run() {
    local i=0 t0 t1 deadline before after
    # The instance's own main.cf and queue: nothing here reaches the
    # machine's Postfix.
    postconf -c "$pf_conf" -e "relayhost = [127.0.0.1]:$pf_sink" "defer_transports = smtp" \
        "default_transport = smtp" "relay_transport = relay" \
        "default_destination_concurrency_limit = 20" "smtp_tls_security_level = none"
    postfix -c "$pf_conf" reload >/dev/null 2>&1
    postsuper -c "$pf_conf" -d ALL >/dev/null 2>&1 || true
    before=$(grep -c 'status=sent' "$pf_log" 2>/dev/null || true)
    while [ $i -lt "$messages" ]; do
        /usr/sbin/sendmail -C "$pf_conf" -i -f "robot@$domain" "$rcpt" < "$msg" || die "postfix sendmail failed"
        i=$((i + 1))
    done
    deadline=$((SECONDS + timeout))
    while [ "$(pf_queued)" != "$messages" ] && [ $SECONDS -lt $deadline ]; do sleep 0.1; done
    postconf -c "$pf_conf" -e "defer_transports ="
    postfix -c "$pf_conf" reload >/dev/null 2>&1
    sleep 1
    t0=$(now)
    postqueue -c "$pf_conf" -f
    while ! postqueue -c "$pf_conf" -p 2>/dev/null | grep -q 'Mail queue is empty' && [ $SECONDS -lt $deadline ]; do
        sleep 0.02
    done
    t1=$(now)
    sleep 0.5
    after=$(grep -c 'status=sent' "$pf_log" 2>/dev/null || true)
    [ $((after - before)) = "$messages" ] || say "postfix: $((after - before)) of $messages sent"
    awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f\n", b - a }'
}

best_ph= best_pf=
better() { awk -v a="$1" -v b="$2" 'BEGIN { if (b == "" || a < b) print a; else print b }'; }
r=0
while [ $r -lt "$rounds" ]; do
    if [ $((r % 2)) = 0 ]; then
        say "round $((r + 1)): posthorn, then postfix"
        best_ph=$(better "$(ph_run)" "$best_ph"); best_pf=$(better "$(pf_run)" "$best_pf")
    else
        say "round $((r + 1)): postfix, then posthorn"
        best_pf=$(better "$(pf_run)" "$best_pf"); best_ph=$(better "$(ph_run)" "$best_ph")
    fi
    r=$((r + 1))
done

rate() { awk -v n="$messages" -v s="$1" 'BEGIN { if (s > 0) printf "%.0f", n / s; else print "-" }'; }
ph_rate=$(rate "$best_ph")
pf_rate=$(rate "$best_pf")
printf '%-34s %12s %12s %8s\n' load posthorn postfix ratio
printf '%-34s %6s msg/s %6s msg/s %8s\n' "queue -> smtp-sink, 20 connections" "$ph_rate" "$pf_rate" \
    "$(awk -v a="$ph_rate" -v b="$pf_rate" 'BEGIN { if (b > 0) printf "%.2fx", a / b; else print "-" }')"
echo
echo "ratio = posthorn / postfix (higher is faster); $messages messages of 4 KiB, best of $rounds round(s)."
echo "Posthorn log: $inst.qrun.log; Postfix log: $pf_log"
