#!/usr/bin/env bash
# `make bench`: start a dedicated real Kafka broker and minipipe on free ports, run cmd/minipipe-bench
# against them, print the machine and the figures. Set MINIPIPE_BENCH_ARGS for other scenarios or durations.
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"
cd "$DEPLOY_DIR/.."
go build -o bin/minipipe ./cmd/minipipe
go build -o bin/minipipe-bench ./cmd/minipipe-bench
work=$(mktemp -d /tmp/minipipe-bench.XXXXXX)
kport=$((20000 + RANDOM % 20000))
mp_pid=""
cleanup() {
  [ -n "$mp_pid" ] && kill "$mp_pid" 2>/dev/null && wait "$mp_pid" 2>/dev/null
  "$DEPLOY_DIR/kafka/kafka.sh" kill --dir "$work/kafka" --port "$kport" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
"$DEPLOY_DIR/kafka/kafka.sh" start --dir "$work/kafka" --port "$kport"
rest=$((kport + 10)); reg=$((kport + 11)); http=$((kport + 12))
./bin/minipipe run --brokers 127.0.0.1:$kport --data-dir "$work/data" --rest-addr 127.0.0.1:$rest \
  --registry-addr 127.0.0.1:$reg --http-addr 127.0.0.1:$http --log-level warn > "$work/minipipe.log" 2>&1 &
mp_pid=$!
for _ in $(seq 120); do curl -sf "http://127.0.0.1:$http/readyz" >/dev/null && break; sleep 0.5; done
curl -sf "http://127.0.0.1:$http/readyz" >/dev/null || { cat "$work/minipipe.log"; die "minipipe did not become ready"; }
kv=$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$DEPLOY_DIR/kafka/pom.xml")
./bin/minipipe-bench --rest "http://127.0.0.1:$rest" --kafka-version "$kv" ${MINIPIPE_BENCH_ARGS:-}
grep -E "level=(ERROR|WARN)" "$work/minipipe.log" | head -5 || true
