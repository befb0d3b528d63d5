#!/usr/bin/env bash
# Start and stop an S3-compatible server for tests and `make run` on S3: moto's server mode (Apache-2.0, from PyPI,
# in a cached virtualenv), a plain process on 127.0.0.1, path-style, with the bucket "minipipe". moto keeps its
# objects in memory: they are gone when it stops.
#
#   s3.sh fetch                         make the virtualenv once (cached)
#   s3.sh start [--dir D] [--port P]    serve on 127.0.0.1:P (9000), bucket minipipe; writes D/env
#   s3.sh stop  [--dir D]
#   s3.sh up | down                     the default server: ./.state/s3 on 127.0.0.1:9000
#
# D/env holds `export AWS_ACCESS_KEY_ID=… AWS_SECRET_ACCESS_KEY=… AWS_REGION=… MINIPIPE_S3_ENDPOINT=…` lines for
# `source`; moto takes any credentials, these are made once per D.
source "$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/lib.sh"

req="$DEPLOY_DIR/s3/requirements.txt"
dir=${MINIPIPE_S3_DIR:-./.state/s3}
port=${MINIPIPE_S3_PORT:-9000}
bucket=minipipe
cmd=${1:-}; [ $# -gt 0 ] && shift
while [ $# -gt 0 ]; do
  case $1 in
    --dir) dir=$2; shift 2 ;;
    --port) port=$2; shift 2 ;;
    *) die "unknown option $1" ;;
  esac
done
mkdir -p "$dir"; dir=$(cd "$dir" && pwd)
pidfile=$dir/moto.pid

# The virtualenv (deploy/python.sh, cached by the requirements' hash); prints its python.
fetch() { "$DEPLOY_DIR/python.sh" "$req"; }

start() {
  if pid_alive "$pidfile"; then
    grep -q "MINIPIPE_S3_ENDPOINT=http://127.0.0.1:$port\$" "$dir/env" 2>/dev/null ||
      die "an S3 server from $dir already runs (pid $(cat "$pidfile")) on another port: $(grep ENDPOINT "$dir/env")"
    log "S3 server already running (pid $(cat "$pidfile")) from $dir"; return 0
  fi
  if port_open "$port"; then die "127.0.0.1:$port is taken by another process"; fi
  local python; python=$(fetch)
  if [ ! -s "$dir/env" ]; then
    (umask 077; cat > "$dir/env" <<ENV
export AWS_ACCESS_KEY_ID=minipipe
export AWS_SECRET_ACCESS_KEY=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
export AWS_REGION=us-east-1
export MINIPIPE_S3_ENDPOINT=http://127.0.0.1:$port
ENV
    )
  fi
  sed -i "s|^export MINIPIPE_S3_ENDPOINT=.*|export MINIPIPE_S3_ENDPOINT=http://127.0.0.1:$port|" "$dir/env"
  log "starting moto's S3 server on 127.0.0.1:$port"
  nohup "$python" -m moto.server -H 127.0.0.1 -p "$port" >> "$dir/moto.log" 2>&1 &
  echo $! > "$pidfile"
  if ! wait_port "$port" 60 "$pidfile"; then tail -40 "$dir/moto.log" >&2; die "the S3 server did not start; log: $dir/moto.log"; fi
  # The bucket, made with the credentials of D/env (path-style).
  (
    # shellcheck disable=SC1091
    source "$dir/env"
    "$python" - "$port" "$bucket" <<'PY' || exit 1
import sys, boto3
port, bucket = sys.argv[1], sys.argv[2]
s3 = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{port}")
names = [b["Name"] for b in s3.list_buckets().get("Buckets", [])]
if bucket not in names:
    s3.create_bucket(Bucket=bucket)
PY
  ) || die "creating the bucket $bucket failed; log: $dir/moto.log"
  log "S3 is up on http://127.0.0.1:$port (pid $(cat "$pidfile")), bucket $bucket; credentials: source $dir/env"
}

case $cmd in
  fetch) fetch >/dev/null ;;
  start) start ;;
  stop) stop_pid "$pidfile" 10 ;;
  up) start ;;
  down) stop_pid "$pidfile" 10 ;;
  *) sed -n '2,13p' "$0"; exit 2 ;;
esac
