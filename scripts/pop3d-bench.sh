#!/bin/sh
# pop3d-bench.sh - time pop3d on a big Maildir over a pipe: login+STAT,
# UIDL, and RETR of every message, cold (no size cache) and warm, with
# the peak RSS. Usage: scripts/pop3d-bench.sh [messages] [kB per message]
# Defaults: 10000 messages of 25 kB (250 MB), as issue 6's bench asks.
# Not a Dovecot comparison yet: that needs Dovecot installed beside it.
set -eu
n=${1:-10000}
kb=${2:-25}
top=$(cd "$(dirname "$0")/.." && pwd)
cargo build --release -q -p posthorn-pop3d --manifest-path "$top/Cargo.toml"
bin="$top/target/release/pop3d"
dir=$(mktemp -d /tmp/pop3d-bench.XXXXXX)
trap 'rm -rf "$dir"' EXIT
mkdir -p "$dir/home/u/Maildir/new" "$dir/home/u/Maildir/cur" "$dir/home/u/Maildir/tmp"
printf 'u:{PLAIN}x::::%s::\n' "$dir/home/u" > "$dir/users"
printf 'users = "users"\nsystem_users = false\nlog = "stderr"\n' > "$dir/posthorn.toml"
python3 - "$dir/home/u/Maildir/new" "$n" "$kb" <<'PY'
import os, sys
d, n, kb = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
line = b"x" * 71 + b"\n"
body = line * (kb * 1024 // 72)
for i in range(n):
    m = b"Subject: message %d\nFrom: a@example.org\n\n" % i + body
    with open(os.path.join(d, "%d.M%dP1.bench,S=%d" % (1700000000 + i, i, len(m))), "wb") as f:
        f.write(m)
PY
if [ "$(id -u)" = 0 ]; then chown -R nobody: "$dir"; as="setpriv --reuid=nobody --regid=nogroup --clear-groups"; else as=""; fi
export POSTHORN_CONFIG="$dir/posthorn.toml"
session() { # session NAME SCRIPT
    start=$(date +%s.%N)
    printf "USER u\r\nPASS x\r\n$2QUIT\r\n" | $as /usr/bin/env time -f '%M' -o "$dir/rss" "$bin" 2>/dev/null >"$dir/out"
    end=$(date +%s.%N)
    bytes=$(wc -c < "$dir/out")
    echo "$1: $(echo "($end - $start) * 1000" | bc | cut -d. -f1) ms, $bytes bytes out, peak RSS $(cat "$dir/rss") kB"
}
sync
session "login+STAT (cold: sizes counted)" "STAT\r\n"
session "login+STAT (warm)" "STAT\r\n"
session "login+UIDL" "UIDL\r\n"
retr=$(python3 -c "import sys; sys.stdout.write(''.join('RETR %d\\\\r\\\\n' % i for i in range(1, $n + 1)))")
session "RETR of all $n" "$retr"
