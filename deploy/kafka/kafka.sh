#!/usr/bin/env bash
# Fetch, start and stop a real single-node Apache Kafka 4.x broker (KRaft, combined broker+controller) from
# Maven Central jars, as a plain process on 127.0.0.1.
#
#   kafka.sh fetch                              download the jars once (cached)
#   kafka.sh start [--dir D] [--port P] [--controller-port C] [--partitions N]
#   kafka.sh stop  [--dir D]                    controlled shutdown (SIGTERM), SIGKILL after 30 s
#   kafka.sh kill  [--dir D]                    SIGKILL, for crash tests
#   kafka.sh status [--dir D]
#   kafka.sh up | down                          start/stop the default broker: ./.state/kafka on 127.0.0.1:9092
#
# start is idempotent: a broker already running from D is left alone. Data under D survives stop/start.
source "$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/lib.sh"

KAFKA_VERSION=$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$DEPLOY_DIR/kafka/pom.xml")
LIBS="$MINIPIPE_CACHE/kafka-$KAFKA_VERSION/libs"

dir=${MINIPIPE_KAFKA_DIR:-./.state/kafka}
port=${MINIPIPE_KAFKA_PORT:-9092}
cport=""
partitions=1
cmd=${1:-}; [ $# -gt 0 ] && shift
while [ $# -gt 0 ]; do
  case $1 in
    --dir) dir=$2; shift 2 ;;
    --port) port=$2; shift 2 ;;
    --controller-port) cport=$2; shift 2 ;;
    --partitions) partitions=$2; shift 2 ;;
    *) die "unknown option $1" ;;
  esac
done
[ -n "$cport" ] || cport=$((port + 1))
mkdir -p "$dir"; dir=$(cd "$dir" && pwd)
pidfile=$dir/kafka.pid

fetch() { with_lock "kafka-$KAFKA_VERSION" maven_copy_deps "$DEPLOY_DIR/kafka/pom.xml" "$LIBS"; }

start() {
  if pid_alive "$pidfile"; then log "kafka already running (pid $(cat "$pidfile")) from $dir"; return 0; fi
  fetch
  local java; java=$(java17)
  cat > "$dir/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$cport
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport
advertised.listeners=PLAINTEXT://127.0.0.1:$port
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$dir/logs
num.partitions=$partitions
auto.create.topics.enable=false
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=4
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
num.network.threads=2
num.io.threads=4
log.segment.bytes=67108864
log.cleaner.dedupe.buffer.size=16777216
log.cleaner.backoff.ms=1000
PROPS
  local jopts=(-Xms256m -Xmx768m -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -Djava.awt.headless=true
    "-Dlog4j2.configurationFile=$DEPLOY_DIR/kafka/log4j2.properties")
  if [ ! -f "$dir/logs/meta.properties" ]; then
    "$java" "${jopts[@]}" -cp "$LIBS/*" kafka.tools.StorageTool format -t "$(cluster_id)" \
      -c "$dir/server.properties" --ignore-formatted > "$dir/format.log" 2>&1 || { cat "$dir/format.log" >&2; die "kafka storage format failed"; }
  fi
  log "starting kafka $KAFKA_VERSION on 127.0.0.1:$port (data in $dir)"
  nohup "$java" "${jopts[@]}" -cp "$LIBS/*" kafka.Kafka "$dir/server.properties" >> "$dir/kafka.log" 2>&1 &
  echo $! > "$pidfile"
  if ! wait_port "$port" 90 "$pidfile"; then tail -40 "$dir/kafka.log" >&2; die "kafka did not start; log: $dir/kafka.log"; fi
  log "kafka is up on 127.0.0.1:$port (pid $(cat "$pidfile"))"
}

# The cluster id is made once per data directory and kept beside it.
cluster_id() {
  [ -s "$dir/cluster.id" ] || "$(java17)" -cp "$LIBS/*" kafka.tools.StorageTool random-uuid > "$dir/cluster.id"
  cat "$dir/cluster.id"
}

case $cmd in
  fetch) fetch ;;
  start) start ;;
  stop) stop_pid "$pidfile" 30 ;;
  kill) [ -f "$pidfile" ] && kill -KILL "$(cat "$pidfile")" 2>/dev/null || true; rm -f "$pidfile" ;;
  status) if pid_alive "$pidfile"; then echo "running pid $(cat "$pidfile") port $port dir $dir"; else echo stopped; exit 1; fi ;;
  up) start ;;
  down) stop_pid "$pidfile" 30 ;;
  *) sed -n '2,13p' "$0"; exit 2 ;;
esac
