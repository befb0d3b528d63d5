#!/usr/bin/env bash
# Fetch, start and stop a real single-node Apache Kafka 4.x broker (KRaft, combined broker+controller) from
# Maven Central jars, as a plain process on 127.0.0.1.
#
#   kafka.sh fetch                              download the jars once (cached)
#   kafka.sh start [--dir D] [--port P] [--controller-port C] [--partitions N] [--sasl-ssl-port S]
#   kafka.sh stop  [--dir D]                    controlled shutdown (SIGTERM), SIGKILL after 30 s
#   kafka.sh kill  [--dir D]                    SIGKILL, for crash tests
#   kafka.sh status [--dir D]
#   kafka.sh up | down                          start/stop the default broker: ./.state/kafka on 127.0.0.1:9092
#
# start is idempotent: a broker already running from D is left alone. Data under D survives stop/start.
# --sasl-ssl-port adds a SASL_SSL listener on 127.0.0.1:S beside the plaintext one: a CA and a server
# certificate for localhost/127.0.0.1 are made (openssl) into D/tls/ (clients trust D/tls/ca.pem), and the user
# "minipipe" is created for SCRAM-SHA-512, SCRAM-SHA-256 and PLAIN with a random password kept in
# D/sasl.password (the SCRAM credentials are made when D is first formatted).
source "$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/lib.sh"

KAFKA_VERSION=$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$DEPLOY_DIR/kafka/pom.xml")
LIBS="$MINIPIPE_CACHE/kafka-$KAFKA_VERSION/libs"

dir=${MINIPIPE_KAFKA_DIR:-./.state/kafka}
port=${MINIPIPE_KAFKA_PORT:-9092}
cport=""
sport=""
partitions=1
cmd=${1:-}; [ $# -gt 0 ] && shift
while [ $# -gt 0 ]; do
  case $1 in
    --dir) dir=$2; shift 2 ;;
    --port) port=$2; shift 2 ;;
    --controller-port) cport=$2; shift 2 ;;
    --partitions) partitions=$2; shift 2 ;;
    --sasl-ssl-port) sport=$2; shift 2 ;;
    *) die "unknown option $1" ;;
  esac
done
[ -n "$cport" ] || cport=$((port + 1))
mkdir -p "$dir"; dir=$(cd "$dir" && pwd)
pidfile=$dir/kafka.pid

fetch() { with_lock "kafka-$KAFKA_VERSION" maven_copy_deps "$DEPLOY_DIR/kafka/pom.xml" "$LIBS"; }

# secure_setup makes the CA, the broker's certificate and keystore, and the SASL user's password, once.
secure_setup() {
  command -v openssl >/dev/null || die "openssl is needed for --sasl-ssl-port (Debian: apt-get install openssl)"
  local t=$dir/tls
  mkdir -p "$t"
  [ -s "$dir/sasl.password" ] || { (umask 077; openssl rand -hex 16 > "$dir/sasl.password"); }
  [ -s "$t/keystore.password" ] || { (umask 077; openssl rand -hex 16 > "$t/keystore.password"); }
  [ -s "$t/server.p12" ] && return 0
  log "making a test CA and a certificate for localhost/127.0.0.1 in $t"
  (
    set -e
    cd "$t"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.pem -days 3650 \
      -subj "/CN=minipipe test CA" 2>/dev/null
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout server.key -out server.csr -subj "/CN=localhost" 2>/dev/null
    printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' > server.ext
    openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 3650 -extfile server.ext 2>/dev/null
    openssl pkcs12 -export -in server.pem -inkey server.key -certfile ca.pem -out server.p12 -passout "pass:$(cat keystore.password)"
    chmod 600 ca.key server.key server.p12
  ) || die "making the test certificates failed"
}

start() {
  if pid_alive "$pidfile"; then log "kafka already running (pid $(cat "$pidfile")) from $dir"; return 0; fi
  fetch
  local java; java=$(java17)
  local listeners="PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport" advertised="PLAINTEXT://127.0.0.1:$port"
  local protocols="CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT" secure="" scram=()
  if [ -n "$sport" ]; then
    secure_setup
    local pw; pw=$(cat "$dir/sasl.password")
    listeners="$listeners,SASL_SSL://127.0.0.1:$sport"; advertised="$advertised,SASL_SSL://127.0.0.1:$sport"
    protocols="$protocols,SASL_SSL:SASL_SSL"
    secure="sasl.enabled.mechanisms=SCRAM-SHA-512,SCRAM-SHA-256,PLAIN
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_ssl.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_minipipe=\"$pw\";
ssl.keystore.type=PKCS12
ssl.keystore.location=$dir/tls/server.p12
ssl.keystore.password=$(cat "$dir/tls/keystore.password")"
    scram=(--add-scram "SCRAM-SHA-512=[name=minipipe,password=$pw]" --add-scram "SCRAM-SHA-256=[name=minipipe,password=$pw]")
  fi
  # It may hold the SASL and keystore passwords: readable by this user only.
  (umask 077; : > "$dir/server.properties")
  cat > "$dir/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$cport
listeners=$listeners
advertised.listeners=$advertised
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=$protocols
$secure
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
      -c "$dir/server.properties" --ignore-formatted "${scram[@]}" > "$dir/format.log" 2>&1 || { cat "$dir/format.log" >&2; die "kafka storage format failed"; }
  fi
  log "starting kafka $KAFKA_VERSION on 127.0.0.1:$port (data in $dir)"
  nohup "$java" "${jopts[@]}" -cp "$LIBS/*" kafka.Kafka "$dir/server.properties" >> "$dir/kafka.log" 2>&1 &
  echo $! > "$pidfile"
  if ! wait_port "$port" 90 "$pidfile"; then tail -40 "$dir/kafka.log" >&2; die "kafka did not start; log: $dir/kafka.log"; fi
  log "kafka is up on 127.0.0.1:$port (pid $(cat "$pidfile"))"
  if [ -n "$sport" ]; then
    wait_port "$sport" 60 "$pidfile" || die "the SASL_SSL listener did not open; log: $dir/kafka.log"
    log "SASL_SSL on 127.0.0.1:$sport: user minipipe (SCRAM-SHA-512, SCRAM-SHA-256, PLAIN), password in $dir/sasl.password, CA $dir/tls/ca.pem"
  fi
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
