#!/usr/bin/env bash
# `make bench`: start a dedicated real Kafka broker and minipipe on free ports, then measure
#   1. the REST edge (cmd/minipipe-bench): records/s at 100 and at 1 record per request, latency percentiles;
#   2. topic → committed Parquet: a topic filled beforehand, drained by a fresh pipeline;
#   3. replay: the same table rebuilt from its topic into a new generation;
#   3a. wide records (~1.1 KB, 30 fields) into zstd Parquet, beside franz-go's raw read of the same topic, then
#       the same topic at zstd level 3, then into an S3 warehouse (moto's server), then from a backlog four times
#       as large (the peak memory of each);
#   3b. one, two and three instances of one pipeline draining the same kind of topic (rows spread over eight
#      days, so eight table partitions for the commit stage to share), rows/s of each and in total;
#   4. the seed's whole stack: records produced while minipipe writes Parquet to HDFS and registers the table in
#      the Hive Metastore, until Trino counts them all; then the peak memory of every process.
# The pipelines run with --rotate-interval 1s (the many-instance scenario 2s): a drain of a fixed backlog ends with
# each source partition's last, partial file, which waits for the rotate interval (a file holds the rows of one
# table partition from one source partition), so the default 10s would measure the interval, not the pipeline.
# Prints the machine and markdown tables. MINIPIPE_BENCH_ARGS goes to the REST scenarios,
# MINIPIPE_BENCH_RECORDS sets the pipeline's record count (default 3,000,000), MINIPIPE_BENCH_FULL_RECORDS the
# whole stack's (default 1,000,000), MINIPIPE_BENCH_MANY_RECORDS the many-instance scenario's (default 2,000,000).
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"
cd "$DEPLOY_DIR/.."
go build -o bin/minipipe ./cmd/minipipe
go build -o bin/minipipe-bench ./cmd/minipipe-bench
work=$(mktemp -d /tmp/minipipe-bench.XXXXXX)
kport=$((20000 + RANDOM % 20000))
rest=$((kport + 10)); reg=$((kport + 11)); http=$((kport + 12))
records=${MINIPIPE_BENCH_RECORDS:-3000000}
mp_pid=""
extra_pids=()
stop_minipipe() { [ -n "$mp_pid" ] && kill "$mp_pid" 2>/dev/null && wait "$mp_pid" 2>/dev/null; mp_pid=""; }
stop_extra() {
  local p
  for p in "${extra_pids[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${extra_pids[@]}"; do wait "$p" 2>/dev/null; done
  extra_pids=()
}
cleanup() {
  stop_minipipe
  stop_extra
  stack_kill "$work"
  rm -rf "$work"
}
trap cleanup EXIT
start_minipipe() { # extra flags…
  ./bin/minipipe run --brokers 127.0.0.1:$kport --data-dir "$work/data" --rest-addr 127.0.0.1:$rest \
    --registry-addr 127.0.0.1:$reg --http-addr 127.0.0.1:$http --log-level warn "$@" >> "$work/minipipe.log" 2>&1 &
  mp_pid=$!
  for _ in $(seq 120); do curl -sf "http://127.0.0.1:$http/readyz" >/dev/null && return 0; sleep 0.5; done
  cat "$work/minipipe.log"; die "minipipe did not become ready"
}
"$DEPLOY_DIR/kafka/kafka.sh" start --dir "$work/kafka" --port "$kport"
kv=$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$DEPLOY_DIR/kafka/pom.xml")

# 1. The REST edge alone (the pipeline takes no topic).
start_minipipe --topics 'none^'
./bin/minipipe-bench --rest "http://127.0.0.1:$rest" --kafka-version "$kv" ${MINIPIPE_BENCH_ARGS:-}

# 2. Topic → committed Parquet.
./bin/minipipe-bench load --brokers 127.0.0.1:$kport --registry "http://127.0.0.1:$reg" --topic benchpipe --records "$records"
stop_minipipe
start_minipipe --topics benchpipe --rotate-interval 1s
echo
echo "| scenario | rows | seconds | rows/s | MB/s of Parquet | files |"
echo "|---|---|---|---|---|---|"
./bin/minipipe-bench drain --http "http://127.0.0.1:$http" --records "$records" --label "topic → committed Parquet"

# 3. Replay of the same table.
start=$(date +%s.%N)
./bin/minipipe replay --table benchpipe --brokers 127.0.0.1:$kport --data-dir "$work/data" --grace 1s > "$work/replay.log" 2>&1 \
  || { cat "$work/replay.log"; die "replay failed"; }
end=$(date +%s.%N)
awk -v n="$records" -v s="$start" -v e="$end" 'BEGIN { d = e - s; printf "| replay (request → swap) | %d | %.1f | %.0f | | |\n", n, d, n / d }'
grep -E "level=(ERROR)" "$work/minipipe.log" | head -5 || true

# 3a. Wide records: MB/s of Avro input committed as zstd Parquet, beside franz-go reading the same topic raw.
wide=${MINIPIPE_BENCH_WIDE_RECORDS:-400000}
# (printed, then parsed: not through `tee /dev/stderr`, which truncates a log file that stderr goes to)
loaded=$(./bin/minipipe-bench load --wide --brokers 127.0.0.1:$kport --registry "http://127.0.0.1:$reg" --topic benchwide --records "$wide")
echo "$loaded"
wide_bytes=$(echo "$loaded" | sed -n 's/.*(\([0-9.]*\) MB of Avro.*/\1/p' | awk '{printf "%.0f", $1 * 1e6}')
stop_minipipe
echo
echo "Wide records: $wide records of ~1.1 KB (30 fields), zstd Parquet; franz-go's raw read of the same topic first:"
echo
echo "| scenario | rows | seconds | rows/s | MB/s (Avro values) |"
echo "|---|---|---|---|---|"
./bin/minipipe-bench rawread --brokers 127.0.0.1:$kport --topic benchwide --label "franz-go raw read"
echo
echo "| scenario | rows | seconds | rows/s | MB/s of Parquet | files | MB/s of Avro in |"
echo "|---|---|---|---|---|---|---|"
start_minipipe --topics benchwide --parquet-compression zstd --rotate-interval 1s
./bin/minipipe-bench drain --http "http://127.0.0.1:$http" --records "$wide" --input-bytes "$wide_bytes" --label "wide records → zstd Parquet"
peak_rss "minipipe (wide records)" "$mp_pid" 2>&1
# The same topic again at zstd level 3 (parquet-mr's and DuckDB's default; minipipe's is 1, as Arrow C++'s):
# a pipeline of its own, with its own state and warehouse.
stop_minipipe
start_minipipe --topics benchwide --parquet-compression zstd --parquet-compression-level 3 --rotate-interval 1s \
  --pipeline-name benchz3 --data-dir "$work/data-z3" --warehouse "file://$work/wh-z3"
./bin/minipipe-bench drain --http "http://127.0.0.1:$http" --records "$wide" --input-bytes "$wide_bytes" --label "the same at zstd level 3"
# The same topic into an S3 warehouse: moto's server on loopback (objects in its memory), so multipart uploads,
# part copies and conditional puts in place of local files and renames; a pipeline of its own again.
stop_minipipe
sport=$(free_port)
"$DEPLOY_DIR/s3/s3.sh" start --dir "$work/s3" --port "$sport" >/dev/null 2>&1 || die "the S3 server did not start"
# shellcheck disable=SC1091
source "$work/s3/env" # its AWS_* credentials, for minipipe's AWS chain
start_minipipe --topics benchwide --parquet-compression zstd --rotate-interval 1s \
  --pipeline-name benchs3 --data-dir "$work/data-s3" --warehouse "s3://minipipe/bench" --s3-endpoint "http://127.0.0.1:$sport"
./bin/minipipe-bench drain --http "http://127.0.0.1:$http" --records "$wide" --input-bytes "$wide_bytes" --label "the same into S3 (moto, loopback)"
peak_rss "minipipe (wide records into S3)" "$mp_pid" 2>&1
stop_minipipe
"$DEPLOY_DIR/s3/s3.sh" stop --dir "$work/s3" >/dev/null 2>&1 || true
# The same drain from a backlog four times as large: --memory-limit (1GiB by default) and the commit stage's
# write budget keep the peak where it was.
big=${MINIPIPE_BENCH_WIDE_BACKLOG:-$((wide * 4))}
stop_minipipe
start_minipipe --topics 'none^'
loaded=$(./bin/minipipe-bench load --wide --brokers 127.0.0.1:$kport --registry "http://127.0.0.1:$reg" --topic benchwidebig --records "$big")
echo "$loaded"
big_bytes=$(echo "$loaded" | sed -n 's/.*(\([0-9.]*\) MB of Avro.*/\1/p' | awk '{printf "%.0f", $1 * 1e6}')
stop_minipipe
start_minipipe --topics benchwidebig --parquet-compression zstd --rotate-interval 1s
./bin/minipipe-bench drain --http "http://127.0.0.1:$http" --records "$big" --input-bytes "$big_bytes" --label "wide records, 4× the backlog"
peak_rss "minipipe (wide records, 4× the backlog)" "$mp_pid" 2>&1

# 3b. One, two and three instances of one pipeline on the same kind of topic: each run is a pipeline of its own
#     (its own groups) on a topic of its own, filled beforehand; instance i listens on base+100i.
many=${MINIPIPE_BENCH_MANY_RECORDS:-2000000}
for n in 1 2 3; do # loaded beforehand, through the running minipipe's registry
  ./bin/minipipe-bench load --brokers 127.0.0.1:$kport --registry "http://127.0.0.1:$reg" --topic "benchmany$n" \
    --records "$many" --spread-days 8 > "$work/load-many$n.log" 2>&1 \
    || { cat "$work/load-many$n.log"; die "loading benchmany$n failed"; }
done
stop_minipipe
echo
echo "One pipeline, N instances on one machine (2 cores shared by Kafka and every instance): $many records of 8 days"
echo
echo "| instances | rows | seconds | rows/s (each) | MB/s of Parquet | files |"
echo "|---|---|---|---|---|---|"
for n in 1 2 3; do
  bases=""
  for i in $(seq 1 "$n"); do
    b=$((kport + 100 * i))
    ./bin/minipipe run --brokers 127.0.0.1:$kport --data-dir "$work/many$n-$i" --rest-addr 127.0.0.1:$b \
      --registry-addr 127.0.0.1:$((b + 1)) --http-addr 127.0.0.1:$((b + 2)) --log-level warn \
      --pipeline-name "benchmany$n" --topics "benchmany$n" --timestamp-field ts --warehouse "file://$work/data/warehouse" \
      --flush-size 100000 --rotate-interval 2s \
      >> "$work/many.log" 2>&1 &
    extra_pids+=($!)
    bases="$bases${bases:+,}http://127.0.0.1:$((b + 2))"
  done
  ./bin/minipipe-bench drain --http "$bases" --records "$many" --label "$n" || { tail -20 "$work/many.log"; die "draining with $n instances failed"; }
  stop_extra
done
grep -E "level=(ERROR)" "$work/many.log" | head -5 || true

# 4. The seed's whole stack: the same kind of topic → Parquet on HDFS, tables in the Hive Metastore, counted by
#    Trino; then the peak memory of every process.
stop_minipipe
full_records=${MINIPIPE_BENCH_FULL_RECORDS:-1000000}
hport=$(free_port); mport=$(free_port); tport=$(free_port)
s0=$(date +%s)
"$DEPLOY_DIR/hdfs/hdfs.sh" start --dir "$work/hdfs" --port "$hport" 2>/dev/null
"$DEPLOY_DIR/hms/hms.sh" start --dir "$work/hms" --port "$mport" --hdfs "hdfs://127.0.0.1:$hport" 2>/dev/null
"$DEPLOY_DIR/trino/trino.sh" start --dir "$work/trino" --port "$tport" --metastore "thrift://127.0.0.1:$mport" 2>/dev/null

echo
echo "HDFS, the Hive Metastore and Trino started in $(( $(date +%s) - s0 )) s; then $full_records records produced while the pipeline runs:"
echo
echo "| scenario | rows | seconds | rows/s | MB/s of Parquet | files |"
echo "|---|---|---|---|---|---|"
start_minipipe --topics benchfull --pipeline-name benchfull --warehouse "hdfs://127.0.0.1:$hport/warehouse" --catalog hive \
  --hive-metastore "thrift://127.0.0.1:$mport" --hive-database bench --rotate-interval 1s
t0=$(date +%s.%N)
./bin/minipipe-bench load --brokers 127.0.0.1:$kport --registry "http://127.0.0.1:$reg" --topic benchfull --records "$full_records"
./bin/minipipe-bench drain --http "http://127.0.0.1:$http" --records "$full_records" --label "topic → Parquet on HDFS (Hive catalog)"
trino() { # SQL → the first row, comma-separated
  curl -s -X POST -H 'X-Trino-User: bench' --data "$1" "http://127.0.0.1:$tport/v1/statement" | python3 -c '
import json, sys, urllib.request
r = json.load(sys.stdin)
while True:
    if "data" in r: print(",".join(str(v) for v in r["data"][0])); break
    if "nextUri" not in r: break
    r = json.load(urllib.request.urlopen(urllib.request.Request(r["nextUri"], headers={"X-Trino-User": "bench"})))
' 2>/dev/null || true
}
count=""
for _ in $(seq 600); do
  count=$(trino 'SELECT count(*), count(DISTINCT id) FROM hive.bench.benchfull')
  [ "$count" = "$full_records,$full_records" ] && break
  sleep 0.5
done
t1=$(date +%s.%N)
[ "$count" = "$full_records,$full_records" ] || die "Trino counted '$count' rows, not $full_records"
awk -v n="$full_records" -v s="$t0" -v e="$t1" 'BEGIN { printf "| first record produced → Trino counts them all (count = count distinct) | %d | %.1f | %.0f | | |\n", n, e - s, n / (e - s) }'
# 4a. The wide records of 3a into tables on HDFS: Hive tables, then Iceberg tables (a snapshot per commit batch of
#     each commit partition, lock-free on the metastore), each until Trino counts them all; then the snapshots per
#     second the metastore took.
stop_minipipe
echo
echo "Wide records ($wide, 30 fields) → zstd Parquet on HDFS, as Hive tables and as Iceberg tables, until Trino counts them all:"
echo
echo "| scenario | rows | seconds | rows/s | MB/s of Avro in |"
echo "|---|---|---|---|---|"
for format in hive iceberg; do
  start_minipipe --topics benchwide --pipeline-name "benchwide$format" --data-dir "$work/data-wide-$format" \
    --warehouse "hdfs://127.0.0.1:$hport/wide-$format" --catalog hive --hive-metastore "thrift://127.0.0.1:$mport" \
    --hive-database "wide$format" --table-format "$format" --parquet-compression zstd --rotate-interval 1s
  t0=$(date +%s.%N)
  count=""
  for _ in $(seq 1200); do
    count=$(trino "SELECT count(*), count(DISTINCT l1) FROM $format.wide$format.benchwide")
    [ "$count" = "$wide,$wide" ] && break
    sleep 0.5
  done
  t1=$(date +%s.%N)
  [ "$count" = "$wide,$wide" ] || die "Trino counted '$count' rows of benchwide as $format, not $wide"
  awk -v n="$wide" -v b="$wide_bytes" -v s="$t0" -v e="$t1" -v f="$format" 'BEGIN { printf "| wide records → %s tables on HDFS, until Trino counts them | %d | %.1f | %.0f | %.1f |\n", f, n, e - s, n / (e - s), b / (e - s) / 1e6 }'
  if [ "$format" = iceberg ]; then
    snaps=$(trino "SELECT count(*), to_unixtime(max(committed_at)) - to_unixtime(min(committed_at)), sum(CAST(summary['added-data-files'] AS bigint)) FROM iceberg.wideiceberg.\"benchwide\$snapshots\"")
    echo
    echo "$snaps" | awk -F, '{ printf "Iceberg: %d snapshots adding %d files in %.1f s of commits: %.1f snapshots/s, %.1f files/s\n", $1, $3, $2, $1 / $2, $3 / $2 }'
  fi
  stop_minipipe
done

echo
echo "peak resident memory (VmHWM) of each process over the whole benchmark:"
peak_rss minipipe "$mp_pid" 2>&1
stack_report "$work" 2>&1
grep -E "level=(ERROR)" "$work/minipipe.log" | head -5 || true

echo
echo "The console with 1,000 tables of 100 partitions (in-process broker; pages in headless Debian Chromium):"
echo
"$DEPLOY_DIR/chromium.sh" >/dev/null
go test -run XXX -bench 'BenchmarkConsole(API|Render)' -benchtime 10x ./processors/console/ 2>&1 | grep -E "^Benchmark"
