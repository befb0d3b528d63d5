#!/usr/bin/env bash
# `make test`: every test of the project against real services started here from their registries.
#  - one real Apache Kafka broker (Maven Central jars, cached) shared by the test packages, on free ports
#    in a temporary directory, killed at the end;
#  - Confluent's Python client in a cached virtualenv (PyPI);
# then go vet and go test over every package. Extra arguments go to go test.
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"
cd "$DEPLOY_DIR/.."

free_port() {
  local p
  for _ in $(seq 100); do
    p=$((20000 + RANDOM % 30000))
    if ! port_open "$p" && ! port_open $((p + 1)); then echo "$p"; return; fi
  done
  die "no free port"
}

start=$(date +%s)
"$DEPLOY_DIR/kafka/kafka.sh" fetch
"$DEPLOY_DIR/python.sh" >/dev/null
kdir=$(mktemp -d /tmp/minipipe-test-kafka.XXXXXX)
kport=$(free_port)
cleanup() { "$DEPLOY_DIR/kafka/kafka.sh" kill --dir "$kdir" --port "$kport" >/dev/null 2>&1 || true; rm -rf "$kdir"; }
trap cleanup EXIT
"$DEPLOY_DIR/kafka/kafka.sh" start --dir "$kdir" --port "$kport"
export MINIPIPE_TEST_KAFKA=127.0.0.1:$kport

log "go vet"
go vet ./...
log "go test (Kafka at $MINIPIPE_TEST_KAFKA)"
go test -count=1 -timeout 25m "$@" ./...
log "all tests passed in $(( $(date +%s) - start ))s"
