#!/usr/bin/env bash
# Fetch, start and stop a real Trino coordinator (single node, also a worker) with a Hive catalog and an Iceberg
# catalog on the same metastore, as a plain process on 127.0.0.1. Trino 476 from Maven Central
# (io.trino:trino-server tarball, of which only the server's lib/ and the hive and iceberg plugins are unpacked)
# and its CLI; it needs Java 24+, so it runs on the Temurin 25 JDK (MINIPIPE_TRINO_JAVA or
# /usr/lib/jvm/temurin-25-jdk-*).
#
#   trino.sh fetch
#   trino.sh start [--dir D] [--port P] [--metastore thrift://127.0.0.1:9083] [--s3-env FILE] [--iceberg-rest URI]
#                                                       HTTP on 127.0.0.1:P (8090)
#   trino.sh stop | kill | status [--dir D]
#   trino.sh cli [--port P] [trino-cli arguments…]      e.g. trino.sh cli --execute 'SHOW SCHEMAS FROM hive'
#   trino.sh up | down                                  the default instance: ./.state/trino on 127.0.0.1:8090
#
# With --s3-env (deploy/s3/s3.sh's env file; `up` takes ./.state/s3/env when it is there), both catalogs also
# read s3:// and s3a:// locations with Trino's native S3 file system: the file's endpoint and region,
# path-style, and its credentials as environment variables the catalog names (${ENV:…}), never in the file.
# With --iceberg-rest (deploy/iceberg-rest/rest.sh's server, up before Trino), the catalog iceberg_rest reads the
# Iceberg tables of that REST catalog (minipipe's --iceberg-catalog rest).
source "$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/lib.sh"

TRINO_VERSION=476
HOME_DIR="$MINIPIPE_CACHE/trino-$TRINO_VERSION"
CLI="$MINIPIPE_CACHE/trino-cli-$TRINO_VERSION.jar"

dir=${MINIPIPE_TRINO_DIR:-./.state/trino}
port=${MINIPIPE_TRINO_PORT:-8090}
metastore=${MINIPIPE_TRINO_METASTORE:-thrift://127.0.0.1:9083}
s3env=${MINIPIPE_TRINO_S3_ENV:-}
icebergrest=${MINIPIPE_TRINO_ICEBERG_REST:-}
cmd=${1:-}; [ $# -gt 0 ] && shift
[ "$cmd" = up ] && [ -z "$s3env" ] && [ -f ./.state/s3/env ] && s3env=./.state/s3/env
[ "$cmd" = up ] && [ -z "$icebergrest" ] && [ -f ./.state/iceberg-rest/uri ] && icebergrest=$(cat ./.state/iceberg-rest/uri)
cli_args=()
while [ $# -gt 0 ]; do
  case $1 in
    --dir) dir=$2; shift 2 ;;
    --port) port=$2; shift 2 ;;
    --metastore) metastore=$2; shift 2 ;;
    --s3-env) s3env=$2; shift 2 ;;
    --iceberg-rest) icebergrest=$2; shift 2 ;;
    *) if [ "$cmd" = cli ]; then cli_args+=("$1"); shift; else die "unknown option $1"; fi ;;
  esac
done
pidfile() { mkdir -p "$dir"; echo "$(cd "$dir" && pwd)/trino.pid"; }

java25() {
  local j
  for j in "${MINIPIPE_TRINO_JAVA:-}" /usr/lib/jvm/temurin-25-jdk-*/bin/java /usr/lib/jvm/java-25-*/bin/java; do
    [ -n "$j" ] && [ -x "$j" ] && { echo "$j"; return; }
  done
  die "Trino $TRINO_VERSION needs Java 24 or newer: install a Temurin 25 JDK under /usr/lib/jvm or set MINIPIPE_TRINO_JAVA"
}

PLUGINS="hive iceberg" # the connectors unpacked from the server tarball

fetch_now() {
  [ "$(cat "$HOME_DIR/.complete" 2>/dev/null)" = "$PLUGINS" ] && [ -f "$CLI" ] && return 0
  command -v mvn >/dev/null || die "mvn not found: install Maven (Debian package maven)"
  log "fetching Trino $TRINO_VERSION from Maven Central (the server tarball is ~820 MB, cached in ~/.m2)"
  local tmp; tmp=$(mktemp -d)
  mvn -q -B "$MDP:copy" -Dartifact="io.trino:trino-server:$TRINO_VERSION:tar.gz" -DoutputDirectory="$tmp" >&2 \
    || die "maven could not fetch io.trino:trino-server:$TRINO_VERSION:tar.gz"
  mvn -q -B "$MDP:copy" -Dartifact="io.trino:trino-cli:$TRINO_VERSION:jar:executable" -DoutputDirectory="$tmp" >&2 \
    || die "maven could not fetch io.trino:trino-cli:$TRINO_VERSION"
  rm -rf "$HOME_DIR.partial"; mkdir -p "$HOME_DIR.partial"
  # Only lib/ and the plugins of $PLUGINS are unpacked (not the other ~60); the tarball stores jars shared by
  # plugins as hard links to another plugin's copy, so those targets are unpacked too and dropped after.
  local tgz="$tmp/trino-server-$TRINO_VERSION.tar.gz" top="trino-server-$TRINO_VERSION" p keep=() inside=()
  inside=(-e "^$top/lib/")
  tar -tvzf "$tgz" > "$tmp/listing"
  for p in $PLUGINS; do inside+=(-e "^$top/plugin/$p/"); done
  # (a name inside a directory already listed would be reported missing: tar matches each member once)
  { echo "$top/lib"
    for p in $PLUGINS; do echo "$top/plugin/$p"; done
    for p in $PLUGINS; do
      awk -v p="$top/plugin/$p/" 'index($0, p) && / link to / { sub(/.* link to /, ""); print }' "$tmp/listing"
    done | { grep -v "${inside[@]}" || true; } | sort -u
  } > "$tmp/members"
  tar -xzf "$tgz" -C "$HOME_DIR.partial" --strip-components=1 -T "$tmp/members" || die "unpacking Trino failed"
  for p in $PLUGINS; do keep+=(! -name "$p"); done
  find "$HOME_DIR.partial/plugin" -mindepth 1 -maxdepth 1 "${keep[@]}" -exec rm -rf {} +
  rm -rf "$HOME_DIR"; mv "$HOME_DIR.partial" "$HOME_DIR"; echo "$PLUGINS" > "$HOME_DIR/.complete"
  mv "$tmp/trino-cli-$TRINO_VERSION-executable.jar" "$CLI"
  rm -rf "$tmp"
}
fetch() { with_lock "trino-$TRINO_VERSION" fetch_now; }

start() {
  local pf; pf=$(pidfile); dir=$(cd "$dir" && pwd)
  if pid_alive "$pf"; then log "trino already running (pid $(cat "$pf"))"; return 0; fi
  fetch
  local etc=$dir/etc
  mkdir -p "$etc/catalog" "$dir/data"
  cat > "$etc/node.properties" <<EOF
node.environment=minipipe
node.id=minipipe-$port
node.data-dir=$dir/data
EOF
  cat > "$etc/config.properties" <<EOF
coordinator=true
node-scheduler.include-coordinator=true
http-server.http.port=$port
discovery.uri=http://127.0.0.1:$port
plugin.dir=$HOME_DIR/plugin
catalog.config-dir=$etc/catalog
query.max-memory=1GB
query.max-memory-per-node=768MB
EOF
  # Data files are read with the UTC zone: minipipe writes UTC-adjusted Parquet timestamps.
  cat > "$etc/catalog/hive.properties" <<EOF
connector.name=hive
hive.metastore.uri=$metastore
fs.hadoop.enabled=true
hive.parquet.time-zone=UTC
hive.metastore-cache-ttl=0s
hive.metastore.thrift.client.connect-timeout=5s
hive.metastore.thrift.client.read-timeout=60s
EOF
  # Iceberg tables in the same metastore (minipipe's --table-format iceberg).
  cat > "$etc/catalog/iceberg.properties" <<EOF
connector.name=iceberg
iceberg.catalog.type=hive_metastore
hive.metastore.uri=$metastore
fs.hadoop.enabled=true
hive.metastore.thrift.client.connect-timeout=5s
hive.metastore.thrift.client.read-timeout=60s
EOF
  rm -f "$etc/catalog/iceberg_rest.properties"
  if [ -n "$icebergrest" ]; then
    [[ $icebergrest =~ ^https?://[A-Za-z0-9.-]+(:[0-9]+)?(/[A-Za-z0-9._/-]*)?$ ]] || die "--iceberg-rest $icebergrest: want http(s)://host[:port][/path]"
    cat > "$etc/catalog/iceberg_rest.properties" <<EOF
connector.name=iceberg
iceberg.catalog.type=rest
iceberg.rest-catalog.uri=$icebergrest
fs.hadoop.enabled=true
EOF
  fi
  if [ -n "$s3env" ]; then
    [ -f "$s3env" ] || die "no S3 env file $s3env (deploy/s3/s3.sh start writes it)"
    # shellcheck disable=SC1090
    source "$s3env"
    [ -n "${AWS_ACCESS_KEY_ID:-}" ] && [ -n "${AWS_SECRET_ACCESS_KEY:-}" ] || die "$s3env gives no AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
    [[ ${MINIPIPE_S3_ENDPOINT:-} =~ ^https?://[A-Za-z0-9.-]+(:[0-9]+)?/?$ ]] || die "$s3env gives no MINIPIPE_S3_ENDPOINT=http(s)://host[:port]"
    export AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_REGION
    local c cats=(hive iceberg)
    [ -n "$icebergrest" ] && cats+=(iceberg_rest)
    for c in "${cats[@]}"; do
      cat >> "$etc/catalog/$c.properties" <<EOF
fs.native-s3.enabled=true
s3.endpoint=$MINIPIPE_S3_ENDPOINT
s3.region=${AWS_REGION:-us-east-1}
s3.path-style-access=true
s3.aws-access-key=\${ENV:AWS_ACCESS_KEY_ID}
s3.aws-secret-key=\${ENV:AWS_SECRET_ACCESS_KEY}
EOF
    done
  fi
  echo "io.trino=WARN" > "$etc/log.properties"
  log "starting Trino $TRINO_VERSION on http://127.0.0.1:$port (metastore $metastore${s3env:+; S3 on $MINIPIPE_S3_ENDPOINT})"
  cd "$dir"
  nohup "$(java25)" -Xmx2g -XX:+UseG1GC -XX:+ExplicitGCInvokesConcurrent -XX:+ExitOnOutOfMemoryError \
    -Djdk.attach.allowAttachSelf=true -XX:+EnableDynamicAgentLoading --enable-native-access=ALL-UNNAMED \
    -Duser.timezone=UTC -Dfile.encoding=UTF-8 "-Dconfig=$etc/config.properties" "-Dnode.data-dir=$dir/data" \
    "-Dlog.levels-file=$etc/log.properties" "-Dlog.path=$dir/server.log" \
    "-Dnode.environment=minipipe" "-Dnode.id=minipipe-$port" -cp "$HOME_DIR/lib/*" io.trino.server.TrinoServer >> "$dir/trino.log" 2>&1 < /dev/null &
  echo $! > "$pf"
  wait_port "$port" 180 "$pf" || { tail -40 "$dir/trino.log" >&2; die "Trino did not start; log: $dir/trino.log"; }
  # The port opens before the server is ready to run queries.
  local i
  for ((i = 0; i < 360; i++)); do
    if curl -fsS "http://127.0.0.1:$port/v1/info" 2>/dev/null | grep -q '"starting":false'; then
      log "Trino is up: http://127.0.0.1:$port"; return 0
    fi
    pid_alive "$pf" || break
    sleep 0.5
  done
  tail -40 "$dir/trino.log" >&2; die "Trino did not become ready; log: $dir/trino.log"
}

case $cmd in
  fetch) fetch ;;
  start|up) start ;;
  stop|down) stop_pid "$(pidfile)" 30 ;;
  kill) pf=$(pidfile); [ -f "$pf" ] && kill -KILL "$(cat "$pf")" 2>/dev/null; rm -f "$pf" ;;
  status) if pid_alive "$(pidfile)"; then echo "running: http://127.0.0.1:$port"; else echo stopped; exit 1; fi ;;
  cli) fetch; exec "$(java25)" --enable-native-access=ALL-UNNAMED -Dorg.jline.terminal.dumb=true -jar "$CLI" --server "http://127.0.0.1:$port" --catalog hive "${cli_args[@]}" ;;
  *) sed -n '2,17p' "$0"; exit 2 ;;
esac
