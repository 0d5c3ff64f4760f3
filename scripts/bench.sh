#!/bin/bash
# bench.sh (make bench): Posthorn's local mail path beside Postfix's, on
# this machine, in one run.
#
# What it measures, for each of Posthorn and Postfix:
#   - end-to-end messages per second, sendmail -> Maildir: BENCH_MESSAGES
#     (1000) messages of 4 KiB, submitted with the system's own sendmail
#     by one submitter, then by 8 submitters in parallel. The clock runs
#     from the first submission until the last message file is in the
#     recipient's Maildir/new/ (the directory is polled).
#   - fsyncs per message: fsync, fdatasync, sync_file_range and msync
#     calls made by every process on the path (submitters, daemons,
#     delivery agents), counted with strace over BENCH_FSYNC_MESSAGES
#     (200) messages, one submitter, in a run of their own.
# Then scripts/bench-smtp.sh: smtpd beside Postfix's smtpd under smtp-source
# (20 sessions, 2000 messages), scripts/bench-pop3.sh: pop3d beside Dovecot
# (login, STAT, UIDL, RETR of a 10,000-message, 250 MB Maildir, warm and
# cold, and RSS), scripts/bench-imap.sh: imapd beside Dovecot's imap
# (SELECT, FETCH of flags, envelopes and structures cold and warm, SEARCH
# TEXT, a 5 MB BODY[], and RSS, on 10,000 messages),
# scripts/bench-login.sh: imapd's logins beside a Dovecot of its own (login
# latency plain and TLS, TLS MB/s, memory per idle session, and 10 clients
# at once logging in and out over loopback through the inetd-style
# launcher), and
# scripts/bench-remote.sh: remote delivery beside Postfix's smtp client
# (2000 queued messages to an smtp-sink, 20 connections).
# Each timed load runs BENCH_ROUNDS (2) times, alternating the two systems
# (A B B A ...), and the best round counts: others share this machine.
# Only the ratio, measured in the same run, means anything.
#
# Needs root. Postfix runs as an instance of its own, made, started and
# stopped by scripts/bench-postfix-setup.sh in target/bench-postfix/
# (postfix -c, its own queue, loopback only); Dovecot likewise, by
# scripts/bench-dovecot-setup.sh. The machine's own Postfix and Dovecot are
# never reconfigured, started, stopped or reloaded; missing packages are
# installed by scripts/bench-install.sh without starting or enabling any
# service. Posthorn runs as a throwaway instance under target/bench/ (see
# scripts/run.sh), started and stopped here. Posthorn's sendmail is called
# as target/release/sendmail, Postfix's as /usr/sbin/sendmail -C
# target/bench-postfix/conf: both by full path. Nothing leaves loopback.
# On any exit (done, an error, ^C, a TERM) what the bench started stops.
set -eu
# The Makefile runs "sh scripts/bench.sh": this script wants bash.
if [ -z "${BASH_VERSION:-}" ]; then exec bash "$0" "$@"; fi

# Postfix's commands from /usr/sbin, never a Posthorn installed in /usr/local.
PATH=/usr/sbin:/usr/bin:/sbin:/bin:$PATH
export PATH

top=$(cd "$(dirname "$0")/.." && pwd)
bin="${BENCH_BIN:-$top/target/release}"
inst="${BENCH_DIR:-$top/target/bench}"   # the Posthorn instance
conf="$inst/posthorn.toml"
domain=bench.test
ph_rcpt="bench@$domain"
pf_user=phbench-pf
pf_rcpt="$pf_user@$domain"
pf_sendmail=/usr/sbin/sendmail
pf_dir="${BENCH_POSTFIX_DIR:-$top/target/bench-postfix}"
pf_conf="$pf_dir/conf"
pf_log="$pf_dir/postfix.log"
pf_port=11925

messages=${BENCH_MESSAGES:-1000}
fsync_messages=${BENCH_FSYNC_MESSAGES:-200}
rounds=${BENCH_ROUNDS:-2}
timeout=${BENCH_TIMEOUT:-90}             # seconds, per timed load
fsync_calls=fsync,fdatasync,sync_file_range,msync

say() { printf '%s\n' "== $*" >&2; }
die() { printf 'bench: %s\n' "$*" >&2; exit 1; }
now() { date +%s.%N; }

[ "$(id -u)" = 0 ] || die "must run as root (it runs Postfix and Dovecot instances of its own)"
for b in sendmail enqueue qrun deliver; do
    [ -x "$bin/$b" ] || die "$bin/$b is missing: run make build"
done
command -v strace >/dev/null || sh "$top/scripts/bench-install.sh" strace

# cleanup - on any exit (done, an error, ^C, a TERM), stop what the bench
# started: qrun, and the Postfix instance if it may be running.
pf_up=
cleanup() {
    if declare -F ph_stop >/dev/null; then ph_stop; fi
    if [ -n "$pf_up" ]; then pf_down; pf_up=; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- Postfix
# pf_down - stop the bench's Postfix instance (by bench-postfix-setup.sh).
pf_down() { sh "$top/scripts/bench-postfix-setup.sh" down "$pf_dir" || true; }
pf_up=1
sh "$top/scripts/bench-postfix-setup.sh" up "$pf_dir" "$pf_port"
pf_maildir="$pf_dir/home/Maildir"
dpkg-query -S "$pf_sendmail" 2>/dev/null | grep -q '^postfix:' ||
    die "$pf_sendmail is not Postfix's sendmail"

# pf_wait_idle - wait (bounded) until Postfix's queue is empty.
pf_wait_idle() {
    local i=0
    while ! postqueue -c "$pf_conf" -p 2>/dev/null | grep -q 'Mail queue is empty'; do
        i=$((i + 1))
        [ $i -lt 300 ] || { say "postfix queue not empty after 30s"; return 0; }
        sleep 0.1
    done
}
pf_prepare() { pf_wait_idle; rm -rf "$pf_maildir"; }
pf_log_mark() { pf_log_lines=$(wc -l 2>/dev/null < "$pf_log" || echo 0); }
# pf_log_problems - log lines since pf_log_mark that are not plain successes.
pf_log_problems() {
    tail -n +"$((pf_log_lines + 1))" "$pf_log" 2>/dev/null |
        grep -Ei 'warning|error|fatal|panic|status=(deferred|bounced)' || true
}

# --------------------------------------------------------------- Posthorn
qrun_pid=

# ph_prepare - a fresh Posthorn instance in $inst, and qrun started,
# optionally under the command given as arguments (strace).
ph_prepare() {
    ph_stop
    rm -rf "$inst"
    mkdir -p "$inst/home/bench"
    cat > "$conf" <<CONF
# A whole Posthorn instance in one directory: paths are relative to this file.
hostname = "$domain"
spool = "spool"
users = "users"
system_users = false
aliases = ""
log = "stderr"
libexec = "$bin"
user = "nobody"

[queue]
parallel = 8
CONF
    echo "bench:{PLAIN}x::::$inst/home/bench::" > "$inst/users"
    chown -R nobody:nogroup "$inst"
    "$@" "$bin/qrun" -C "$conf" 2> "$inst/qrun.log" &
    wrapper_pid=$!
    local i=0
    while [ ! -p "$inst/spool/trigger" ] || [ ! -s "$inst/spool/qrun.lock" ]; do
        i=$((i + 1))
        [ $i -lt 100 ] || { cat "$inst/qrun.log" >&2; die "qrun did not start"; }
        sleep 0.05
    done
    qrun_pid=$(cat "$inst/spool/qrun.lock")
}

# ph_stop - stop qrun (by its pid) and whatever wraps it, with a bound.
ph_stop() {
    if [ -z "$qrun_pid" ]; then
        # qrun never wrote its lock file: stop what was started, if anything.
        [ -z "${wrapper_pid:-}" ] || kill "$wrapper_pid" 2>/dev/null || true
        wrapper_pid=
        return 0
    fi
    kill "$qrun_pid" 2>/dev/null || true
    local i=0
    while kill -0 "$wrapper_pid" 2>/dev/null; do
        i=$((i + 1))
        if [ $i = 100 ]; then
            say "qrun $qrun_pid did not stop on TERM; killing it"
            kill -9 "$qrun_pid" 2>/dev/null || true
        fi
        [ $i -lt 200 ] || break
        sleep 0.05
    done
    wait "$wrapper_pid" 2>/dev/null || true
    qrun_pid= wrapper_pid=
}
# ph_log_problems - qrun.log lines that are not plain successes.
ph_log_problems() {
    grep -Eiv 'daemon started|queue active|status=sent|: removed$' "$inst/qrun.log" || true
}

# ------------------------------------------------------------ the message
# One 4 KiB message (4096 bytes, headers included), realistic text; each
# sendmail adds its own Message-ID.
msg="$inst.msg"
mkdir -p "$(dirname "$msg")"
{
    printf 'From: Build Robot <robot@%s>\n' "$domain"
    printf 'To: Bench Mark <bench@%s>\n' "$domain"
    printf 'Subject: [ci] nightly build #4711 finished: 2 warnings, 0 errors\n'
    printf 'Date: Fri, 28 Nov 2025 11:58:00 +0000\n'
    printf 'MIME-Version: 1.0\n'
    printf 'Content-Type: text/plain; charset=UTF-8\n'
    printf 'Content-Transfer-Encoding: 8bit\n'
    printf 'X-Mailer: posthorn-bench\n'
    printf '\n'
    printf 'Hello,\n\nthe nightly build of the main branch has finished. Summary below;\n'
    printf 'the full log is kept for fourteen days on the build host.\n\n'
    i=1
    while :; do
        printf 'step %02d: compiled crate %-14s in %3d.%02ds, %d warnings, cache hit ratio %d%%.\n' \
            $i "mail-store-$i" $((i * 7 % 97)) $((i * 13 % 100)) $((i % 3)) $((50 + i * 11 % 50))
        i=$((i + 1))
        [ $i -le 40 ] || break
    done
    printf '\nRegards,\nthe build robot\n-- \nThis message was sent automatically; replies go nowhere.\n'
    yes 'Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod.' | head -n 40
} | head -c 4095 > "$msg"
printf '\n' >> "$msg"
[ "$(wc -c < "$msg")" = 4096 ] || die "message is not 4096 bytes"

# --------------------------------------------------------------- the load
# submit N CMD... - one submitter: N messages through CMD, one sendmail each.
# Failures are counted in $inst.fail (one line each) rather than stopping.
submit() {
    local n=$1 k=0; shift
    while [ $k -lt "$n" ]; do
        "$@" < "$msg" || echo fail >> "$fail_file"
        k=$((k + 1))
    done
}
fail_file="$inst.fail"

# count_new DIR - the number of files in DIR (0 if it does not exist yet).
count_new() { ls -U "$1" 2>/dev/null | wc -l; }

# load N P MAILDIR CMD... - N messages through CMD by P submitters in
# parallel; wait (bounded) until N are in MAILDIR/new. Sets $rate (msgs/s,
# or "timeout" or "failed") and $elapsed (seconds). It stops waiting early
# when submissions failed, once every submitter is done.
load() {
    local n=$1 p=$2 maildir=$3; shift 3
    local j per extra t0 t1 got pids= deadline=$((SECONDS + timeout))
    : > "$fail_file"
    per=$((n / p)); extra=$((n % p))
    t0=$(now)
    for j in $(seq 1 "$p"); do
        submit $((per + (j <= extra ? 1 : 0))) "$@" &
        pids="$pids $!"
    done
    while :; do
        got=$(count_new "$maildir/new")
        [ "$got" -lt "$n" ] || break
        [ "$SECONDS" -lt "$deadline" ] || break
        if [ -s "$fail_file" ] && ! alive $pids; then
            sleep 2    # what was accepted may still be on its way
            got=$(count_new "$maildir/new")
            break
        fi
        sleep 0.05
    done
    t1=$(now)
    for j in $pids; do wait "$j" || true; done
    elapsed=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')
    if [ -s "$fail_file" ]; then
        say "  $(wc -l < "$fail_file") submissions failed; $got of $n delivered"
        rate=failed
    elif [ "$got" -lt "$n" ]; then
        say "  timeout after ${timeout}s: $got of $n delivered"
        rate=timeout
    else
        rate=$(awk -v n="$n" -v e="$elapsed" 'BEGIN { printf "%.1f", n / e }')
    fi
}

# alive PID... - true if any of the processes still runs.
alive() {
    local q
    for q in "$@"; do kill -0 "$q" 2>/dev/null && return 0; done
    return 1
}

# ph_load N P - one timed Posthorn run on a fresh instance; sets $rate.
ph_load() {
    ph_prepare
    load "$1" "$2" "$inst/home/bench/Maildir" "$bin/sendmail" -C "$conf" -i "$ph_rcpt"
    ph_stop
    say "  posthorn, $2 submitter(s): $rate msg/s ($1 in ${elapsed}s)"
    ph_log_problems | sed 's/^/  qrun.log: /' | head -n 10 >&2
    cp "$inst/qrun.log" "$inst.qrun-$2.log"
}

# pf_load N P - one timed Postfix run, from an empty Maildir; sets $rate.
pf_load() {
    pf_prepare
    pf_log_mark
    load "$1" "$2" "$pf_maildir" "$pf_sendmail" -C "$pf_conf" -i "$pf_rcpt"
    say "  postfix,  $2 submitter(s): $rate msg/s ($1 in ${elapsed}s)"
    pf_log_problems | sed 's/^/  postfix log: /' | head -n 10 >&2
}

# best A B - the larger rate; "timeout" or "failed" counts as nothing
# (and is what is left when no round gave a rate).
best() {
    awk -v a="$1" -v b="$2" 'BEGIN {
        na = (a ~ /^[0-9.]+$/); nb = (b ~ /^[0-9.]+$/)
        if (na && nb) print (a + 0 > b + 0) ? a : b
        else if (na) print a; else if (nb) print b; else print b }'
}

# ------------------------------------------------------- fsyncs per message
# strace options: follow forks; with --seccomp-bpf only the counted calls
# stop the tracee, so the tracing itself hardly slows the path down.
strace_opts="-f -qq --seccomp-bpf -e signal=none -e trace=$fsync_calls"
strace $strace_opts -o /dev/null true 2>/dev/null || strace_opts="-f -qq -e signal=none -e trace=$fsync_calls"

# count_syncs FILE... - the number of sync calls in strace output files.
# An interrupted call shows up as "fsync(3 <unfinished ...>" and later
# "<... fsync resumed>": only the first is counted.
count_syncs() {
    cat "$@" 2>/dev/null | grep -Ec "^([0-9]+ +)?($(echo $fsync_calls | tr , '|'))\(" || true
}
per_message() { awk -v c="$1" -v n="$2" 'BEGIN { printf "%.1f", c / n }'; }

# wait_for N MAILDIR - bounded wait until N messages are in MAILDIR/new.
wait_for() {
    local i=0
    while [ "$(count_new "$2/new")" -lt "$1" ]; do
        i=$((i + 1))
        [ $i -lt $((timeout * 10)) ] || { say "  timeout: $(count_new "$2/new") of $1 delivered"; return 1; }
        sleep 0.1
    done
}

# ph_fsyncs N / pf_fsyncs N - one traced run of N messages, every process
# on the path under strace; set $per_msg.
ph_fsyncs() {
    local n=$1 c
    ph_prepare strace $strace_opts -o "$inst.strace-qrun"
    : > "$fail_file"
    strace $strace_opts -o "$inst.strace-submit" \
        bash -c "$(declare -f submit); fail_file='$fail_file' msg='$msg'; submit $n \"\$@\"" \
        submit "$bin/sendmail" -C "$conf" -i "$ph_rcpt"
    wait_for "$n" "$inst/home/bench/Maildir" || true
    sleep 0.5    # let qrun finish its bookkeeping for the last message
    ph_stop
    c=$(count_syncs "$inst.strace-qrun" "$inst.strace-submit")
    say "  posthorn: $c sync calls for $n messages" \
        "(submit $(count_syncs "$inst.strace-submit"), queue+delivery $(count_syncs "$inst.strace-qrun"))"
    per_msg=$(per_message "$c" "$n")
    if [ -s "$fail_file" ]; then say "  $(wc -l < "$fail_file") submissions failed"; per_msg=failed; fi
}

# pf_stop - stop the Postfix instance and wait (bounded) until its master
# has exited: "postfix stop" returns before the old master lets go of its
# lock file.
pf_stop() {
    local pid i=0
    pid=$(tr -dc 0-9 2>/dev/null < "$pf_dir/queue/pid/master.pid" || true)
    postfix -c "$pf_conf" stop >/dev/null 2>&1 || true
    # A master that has exited but not been reaped (a zombie: state Z) is gone.
    while [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = master ] &&
        [ "$(cut -d' ' -f3 "/proc/$pid/stat" 2>/dev/null)" != Z ]; do
        i=$((i + 1)); [ $i -lt 100 ] || { say "postfix master $pid did not exit"; return 1; }
        sleep 0.1
    done
}

pf_fsyncs() {
    local n=$1 c i=0 spid
    pf_prepare
    per_msg=failed
    pf_stop || return 0
    # Postfix's master and every daemon it starts, traced from the start.
    strace $strace_opts -o "$inst.strace-postfix" postfix -c "$pf_conf" start-fg >/dev/null 2>&1 &
    spid=$!
    while ! postfix -c "$pf_conf" status >/dev/null 2>&1; do
        i=$((i + 1))
        if [ $i -ge 100 ] || ! kill -0 "$spid" 2>/dev/null; then
            say "postfix did not start under strace; see $pf_log"
            postfix -c "$pf_conf" start >/dev/null 2>&1 || true
            return 0
        fi
        sleep 0.1
    done
    : > "$fail_file"
    strace $strace_opts -o "$inst.strace-pfsubmit" \
        bash -c "$(declare -f submit); fail_file='$fail_file' msg='$msg'; submit $n \"\$@\"" \
        submit "$pf_sendmail" -C "$pf_conf" -i "$pf_rcpt"
    wait_for "$n" "$pf_maildir" || true
    pf_wait_idle
    pf_stop || true
    i=0
    while kill -0 "$spid" 2>/dev/null; do
        i=$((i + 1))
        [ $i -lt 100 ] || { say "strace on postfix did not end"; break; }
        sleep 0.1
    done
    wait "$spid" 2>/dev/null || true
    postfix -c "$pf_conf" start >/dev/null 2>&1 || true    # running again, as setup left it
    c=$(count_syncs "$inst.strace-postfix" "$inst.strace-pfsubmit")
    say "  postfix: $c sync calls for $n messages" \
        "(submit $(count_syncs "$inst.strace-pfsubmit"), queue+delivery $(count_syncs "$inst.strace-postfix"))"
    per_msg=$(per_message "$c" "$n")
    if [ -s "$fail_file" ]; then say "  $(wc -l < "$fail_file") submissions failed"; per_msg=failed; fi
}

# ---------------------------------------------------------------- the runs
started=$(now)
say "load average before: $(cut -d' ' -f1-3 /proc/loadavg); $(nproc) cores"
declare -A ph pf
for p in 1 8; do
    ph[$p]=-; pf[$p]=-
    say "sendmail -> Maildir, $messages messages, $p submitter(s), $rounds round(s)"
    for r in $(seq 1 "$rounds"); do
        # A B B A ...: neither system always goes first.
        for sys in $( [ $((r % 2)) = 1 ] && echo "ph pf" || echo "pf ph"); do
            "${sys}_load" "$messages" "$p"
            if [ "$sys" = ph ]; then ph[$p]=$(best "${ph[$p]}" "$rate")
            else pf[$p]=$(best "${pf[$p]}" "$rate"); fi
        done
    done
done
say "fsyncs per message ($fsync_calls), $fsync_messages messages, 1 submitter, under strace"
ph_fsyncs "$fsync_messages"; ph_fs=$per_msg
pf_fsyncs "$fsync_messages"; pf_fs=$per_msg
say "done in $(awk -v a="$started" -v b="$(now)" 'BEGIN { printf "%.0f", b - a }')s;" \
    "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"

# ratio A B - A/B as N.NNx, or "-" when either is missing.
ratio() {
    awk -v a="$1" -v b="$2" 'BEGIN {
        if (a !~ /^[0-9.]+$/ || b !~ /^[0-9.]+$/ || b == 0) print "-"
        else printf "%.2fx", a / b }'
}

echo
printf '%-34s %12s %12s %8s\n' load posthorn postfix ratio
for p in 1 8; do
    if [ "$p" = 1 ]; then label="sendmail->Maildir, 1 submitter"; else label="sendmail->Maildir, $p submitters"; fi
    printf '%-34s %6s msg/s %6s msg/s %8s\n' "$label" "${ph[$p]}" "${pf[$p]}" "$(ratio "${ph[$p]}" "${pf[$p]}")"
done
printf '%-34s %12s %12s %8s\n' "fsyncs per message" "$ph_fs" "$pf_fs" "$(ratio "$ph_fs" "$pf_fs")"
echo
echo "ratio = posthorn / postfix (msg/s: higher is faster; fsyncs: lower is fewer)."
echo "$messages messages of 4 KiB per load, best of $rounds round(s); fsyncs over $fsync_messages messages."
echo "Posthorn logs: $inst.qrun-1.log, $inst.qrun-8.log; Postfix log: $pf_log"

# The other loads start their own peers (the Postfix instance in the same
# directory): this one stops here.
pf_down; pf_up=

# pop3d beside Dovecot, in a script of its own (BENCH_POP3=no skips it).
if [ "${BENCH_POP3:-yes}" != no ]; then
    echo
    bash "$top/scripts/bench-pop3.sh"
fi

# smtpd beside Postfix's smtpd, with smtp-source (BENCH_SMTP=no skips it).
if [ "${BENCH_SMTP:-yes}" != no ]; then
    echo
    bash "$top/scripts/bench-smtp.sh"
fi

# imapd beside Dovecot's imap, in a script of its own (BENCH_IMAP=no skips it).
if [ "${BENCH_IMAP:-yes}" != no ]; then
    echo
    bash "$top/scripts/bench-imap.sh"
fi

# What a login costs, imapd beside a Dovecot of its own over loopback:
# login latency, TLS throughput, memory per session, and 10 clients at
# once logging in and out (BENCH_LOGIN=no skips it).
if [ "${BENCH_LOGIN:-yes}" != no ]; then
    echo
    bash "$top/scripts/bench-login.sh"
fi

# remote delivery beside Postfix's smtp client, both to a local smtp-sink
# (BENCH_REMOTE=no skips it).
if [ "${BENCH_REMOTE:-yes}" != no ]; then
    echo
    bash "$top/scripts/bench-remote.sh"
fi

# DKIM signing and checking, and SPF, per message, beside OpenDKIM
# (BENCH_MAILAUTH=no skips it).
if [ "${BENCH_MAILAUTH:-yes}" != no ]; then
    echo
    sh "$top/scripts/bench-mailauth.sh"
fi
