#!/usr/bin/env bash
# `make test`: every test of the project against real services started here from their registries, each on
# free ports in its own temporary directory, shared by the test packages and killed at the end:
#  - Apache Kafka 4.x (KRaft, single node) from Maven Central jars;
#  - HDFS (one NameNode, one DataNode, Hadoop 3.4) from Maven Central jars;
#  - moto's S3-compatible server (PyPI, in a cached virtualenv) with the bucket minipipe;
#  - the Hive Metastore (standalone, Derby) from Maven Central jars, its warehouse on that HDFS, S3A on that server;
#  - Apache Iceberg's REST catalog test server (iceberg-core's, Maven Central jars) for --iceberg-catalog rest;
#  - Trino with a Hive catalog on that metastore (Maven Central tarball, Temurin 25), HDFS and native S3, and an
#    Iceberg catalog on each of the metastore and the REST catalog;
#  - Confluent's Python client in a cached virtualenv (PyPI);
#  - Debian's Chromium for the console's browser tests, and systemd-analyze (apt-get, once per machine);
#  - Helm (pinned, built from the Go module proxy) for the chart's checks; the image's Debian packages;
# then go vet, staticcheck (pinned) and go test over every package. Downloads are cached (~/.cache/minipipe, ~/.m2). At the end it
# prints each service's peak resident memory (VmHWM). Extra arguments go to go test.
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"
cd "$DEPLOY_DIR/.."
# The static checker, pinned (fetched from the Go module proxy into the module cache on first use).
STATICCHECK=v0.8.2

start=$(date +%s)
root=$(mktemp -d /tmp/minipipe-test.XXXXXX)
kport=$(free_port); hport=$(free_port); mport=$(free_port); tport=$(free_port); sport=$(free_port); rport=$(free_port)

cleanup() { stack_kill "$root"; rm -rf "$root"; }
trap cleanup EXIT

# Fetch everything (each is a no-op once cached), then start Kafka and HDFS side by side, the metastore on
# HDFS, and Trino on the metastore; a failure anywhere stops the run with the service's log tail.
"$DEPLOY_DIR/kafka/kafka.sh" fetch
"$DEPLOY_DIR/hdfs/hdfs.sh" fetch
"$DEPLOY_DIR/hms/hms.sh" fetch
"$DEPLOY_DIR/trino/trino.sh" fetch
"$DEPLOY_DIR/python.sh" >/dev/null
"$DEPLOY_DIR/python.sh" "$DEPLOY_DIR/../testkit/python/iceberg-requirements.txt" >/dev/null # pyiceberg
"$DEPLOY_DIR/s3/s3.sh" fetch
"$DEPLOY_DIR/iceberg-rest/rest.sh" fetch
"$DEPLOY_DIR/chromium.sh" >/dev/null
command -v systemd-analyze >/dev/null || with_lock apt apt_install systemd # verifies deploy/systemd's unit
MINIPIPE_TEST_HELM=$("$DEPLOY_DIR/helm.sh" --path) # the chart's checks (built from the Go module proxy once)
export MINIPIPE_TEST_HELM

"$DEPLOY_DIR/kafka/kafka.sh" start --dir "$root/kafka" --port "$kport" & kpid=$!
"$DEPLOY_DIR/hdfs/hdfs.sh" start --dir "$root/hdfs" --port "$hport" & hpid=$!
wait "$hpid" || die "HDFS did not start"
"$DEPLOY_DIR/s3/s3.sh" start --dir "$root/s3" --port "$sport" || die "the S3 server did not start"
# The metastore and Trino reach s3a:// tables on that server too (its endpoint and credentials).
"$DEPLOY_DIR/hms/hms.sh" start --dir "$root/hms" --port "$mport" --hdfs "hdfs://127.0.0.1:$hport" --s3-env "$root/s3/env"
"$DEPLOY_DIR/iceberg-rest/rest.sh" start --dir "$root/iceberg-rest" --port "$rport" --s3-env "$root/s3/env" || die "the Iceberg REST catalog did not start"
"$DEPLOY_DIR/trino/trino.sh" start --dir "$root/trino" --port "$tport" --metastore "thrift://127.0.0.1:$mport" --s3-env "$root/s3/env" \
  --iceberg-rest "http://127.0.0.1:$rport" & tpid=$!
wait "$kpid" || die "Kafka did not start"
wait "$tpid" || die "Trino did not start"
log "services up in $(( $(date +%s) - start ))s"

export MINIPIPE_TEST_KAFKA=127.0.0.1:$kport
export MINIPIPE_TEST_HDFS=hdfs://127.0.0.1:$hport
export MINIPIPE_TEST_HMS=thrift://127.0.0.1:$mport
export MINIPIPE_TEST_TRINO=http://127.0.0.1:$tport
export MINIPIPE_TEST_S3=http://127.0.0.1:$sport
export MINIPIPE_TEST_ICEBERG_REST=http://127.0.0.1:$rport
# shellcheck disable=SC1091
source "$root/s3/env" # the S3 server's AWS_* credentials, for the SDK's chain

log "go vet, staticcheck $STATICCHECK"
go vet ./...
go vet -tags failpoints ./topology/
go run "honnef.co/go/tools/cmd/staticcheck@$STATICCHECK" ./...
go run "honnef.co/go/tools/cmd/staticcheck@$STATICCHECK" -tags failpoints ./topology/
log "go test (Kafka $MINIPIPE_TEST_KAFKA, HDFS $MINIPIPE_TEST_HDFS, metastore $MINIPIPE_TEST_HMS, Trino $MINIPIPE_TEST_TRINO)"
status=0
go test -count=1 -timeout 35m "$@" ./... || status=$?
log "peak resident memory of the services:"
stack_report "$root"
[ "$status" = 0 ] || die "tests failed"
log "all tests passed in $(( $(date +%s) - start ))s"
