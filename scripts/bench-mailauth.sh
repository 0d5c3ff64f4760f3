#!/bin/sh
# bench-mailauth.sh - DKIM signing and verifying cost per message, and an
# SPF check's, for Posthorn (in-process, posthorn-mailauth) beside
# OpenDKIM (opendkim-testmsg, one process per message) when it is
# installed. Self-contained: a temporary directory, no service touched.
set -eu
N=${MAILAUTH_BENCH_N:-2000}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DIR=$(mktemp -d)
trap 'rm -rf "$DIR"' EXIT
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$DIR/rsa.pem" 2>/dev/null
echo "== mail authentication: cost per message (10 kB message, $N runs)"
(cd "$ROOT" && cargo build -q --release -p posthorn-mailauth --example bench)
(cd "$DIR" && "$ROOT/target/release/examples/bench" "$N" "$DIR/rsa.pem")
if command -v opendkim-testmsg >/dev/null 2>&1; then
    M=200
    # OpenDKIM's library through opendkim-testmsg: one process per
    # message, so its process start is in the figure (shown beside it).
    start=$(date +%s%N)
    i=0
    while [ $i -lt $M ]; do
        opendkim-testmsg -d example.org -s rsa -k "$DIR/rsa.pem" <"$DIR/bench-message.eml" >"$DIR/signed.eml"
        i=$((i + 1))
    done
    end=$(date +%s%N)
    sign=$(( (end - start) / M / 1000 ))
    start=$(date +%s%N)
    i=0
    while [ $i -lt $M ]; do
        /bin/true
        i=$((i + 1))
    done
    end=$(date +%s%N)
    spawn=$(( (end - start) / M / 1000 ))
    echo "opendkim-testmsg rsa-sha256 (2048) sign $sign us/msg, a process start alone $spawn us (so about $((sign - spawn)) us of work)"
else
    echo "opendkim-testmsg not installed (apt-get install opendkim-tools): no OpenDKIM figure"
fi
