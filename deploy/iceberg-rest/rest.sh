#!/usr/bin/env bash
# Start and stop an Apache Iceberg REST catalog for tests and `make run-iceberg-rest`: Iceberg's own REST catalog test
# server (iceberg-core's RESTCatalogAdapter behind its RESTCatalogServlet, from Maven Central; RESTCatalog.java
# serves it on 127.0.0.1), its tables in a SQLite file under D, their metadata files written by Hadoop's FileIO (file:
# and hdfs: warehouses). A plain process on 127.0.0.1.
#
#   rest.sh fetch                                 download the jars once (cached)
#   rest.sh start [--dir D] [--port P] [--warehouse URI] [--s3-env FILE]
#                                                 serve http://127.0.0.1:P (8181); writes D/uri
#
# With --s3-env (deploy/s3/s3.sh's env file; `up` takes ./.state/s3/env when it is there) it also writes s3:// and
# s3a:// locations, through Hadoop's S3A on that endpoint, its credentials from the file's environment variables.
#   rest.sh stop | kill [--dir D]
#   rest.sh up | down                             the default server: ./.state/iceberg-rest on 127.0.0.1:8181
source "$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/lib.sh"

jars=$MINIPIPE_CACHE/iceberg-rest-1.10.0
dir=${MINIPIPE_ICEBERG_REST_DIR:-./.state/iceberg-rest}
port=${MINIPIPE_ICEBERG_REST_PORT:-8181}
warehouse=
s3env=
cmd=${1:-}; [ $# -gt 0 ] && shift
[ "$cmd" = up ] && [ -f ./.state/s3/env ] && s3env=./.state/s3/env
while [ $# -gt 0 ]; do
  case $1 in
    --dir) dir=$2; shift 2 ;;
    --port) port=$2; shift 2 ;;
    --warehouse) warehouse=$2; shift 2 ;;
    --s3-env) s3env=$2; shift 2 ;;
    *) die "unknown option $1" ;;
  esac
done
case $cmd in start | up) mkdir -p "$dir" ;; esac
[ -d "$dir" ] && dir=$(cd "$dir" && pwd)
pidfile=$dir/rest.pid
[ -n "$warehouse" ] || warehouse=file://$dir/warehouse
[[ $port =~ ^[0-9]+$ ]] && [ "$port" -gt 0 ] && [ "$port" -lt 65536 ] || die "--port $port: want a TCP port"

fetch() { with_lock iceberg-rest maven_copy_deps "$DEPLOY_DIR/iceberg-rest/pom.xml" "$jars"; }

start() {
  if pid_alive "$pidfile"; then
    log "the Iceberg REST catalog already runs (pid $(cat "$pidfile")) from $dir"; return 0
  fi
  if port_open "$port"; then die "127.0.0.1:$port is taken by another process"; fi
  fetch
  local java; java=$(java17)
  if [ -n "$s3env" ]; then
    [ -f "$s3env" ] || die "no S3 env file $s3env (deploy/s3/s3.sh start writes it)"
    # shellcheck disable=SC1090
    source "$s3env"
    export AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_REGION MINIPIPE_S3_ENDPOINT
  fi
  log "starting the Iceberg REST catalog on 127.0.0.1:$port (warehouse $warehouse)"
  # iceberg-core's test jar carries test copies of some Hadoop classes (S3A's among them): it goes last.
  local cp="" j
  for j in "$jars"/*.jar; do case $j in *-tests.jar) ;; *) cp+="$j:" ;; esac; done
  for j in "$jars"/*-tests.jar; do cp+="$j:"; done
  nohup "$java" -Xmx384m -cp "${cp%:}" "$DEPLOY_DIR/iceberg-rest/RESTCatalog.java" "$port" "jdbc:sqlite:file:$dir/catalog.db" "$warehouse" \
    >> "$dir/rest.log" 2>&1 &
  echo $! > "$pidfile"
  if ! wait_port "$port" 90 "$pidfile"; then tail -40 "$dir/rest.log" >&2; die "the REST catalog did not start; log: $dir/rest.log"; fi
  echo "http://127.0.0.1:$port" > "$dir/uri"
  log "the Iceberg REST catalog is up on http://127.0.0.1:$port (pid $(cat "$pidfile"))"
}

case $cmd in
  fetch) fetch ;;
  start | up) start ;;
  stop | down) stop_pid "$pidfile" 10; rm -f "$dir/uri" ;;
  kill)
    if [ -f "$pidfile" ]; then
      pid=$(cat "$pidfile"); kill -KILL "$pid" 2>/dev/null || true
      for _ in $(seq 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
      rm -f "$pidfile"
    fi
    rm -f "$dir/uri" ;;
  *) sed -n '2,12p' "$0"; exit 2 ;;
esac
