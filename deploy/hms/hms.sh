#!/usr/bin/env bash
# Fetch, start and stop a real standalone Hive Metastore 4.1 (Derby-backed) from Maven Central jars, as a plain
# process on 127.0.0.1. Start HDFS first: the metastore creates database and table locations on it.
#
#   hms.sh fetch
#   hms.sh start [--dir D] [--port P] [--hdfs hdfs://127.0.0.1:8020] [--s3-env FILE]
#                                          Thrift on 127.0.0.1:P (default 9083)
#   hms.sh stop | kill | status [--dir D]
#   hms.sh up | down                       the default instance: ./.state/hms on 127.0.0.1:9083
#
# With --s3-env (deploy/s3/s3.sh's env file; `up` takes ./.state/s3/env when it is there), the metastore also
# reaches s3a:// locations through Hadoop's S3A: the file's endpoint and region, path-style, and its credentials
# given to the process as environment variables (they are not written into the metastore's config).
#
# A new metastore's Derby database is made by Hive's own schema script (with its transaction and lock tables, which
# Iceberg's Hive commits take), then DataNucleus adds what Hive 4.1's classes map beyond it.
source "$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/lib.sh"

HIVE_VERSION=$(sed -n 's:.*<hive.version>\(.*\)</hive.version>.*:\1:p' "$DEPLOY_DIR/hms/pom.xml")
HIVE_DEPS_VERSION=$(sed -n 's:.*<hive.deps.version>\(.*\)</hive.deps.version>.*:\1:p' "$DEPLOY_DIR/hms/pom.xml")
LIBS="$MINIPIPE_CACHE/hms-$HIVE_VERSION/libs"
# Hive's Derby schema script (4.0.0: Hive 4.1.0's own scripts are not on Maven Central; DataNucleus adds what 4.1's
# classes map beyond it), from the standalone metastore's binary tarball on Maven Central.
SCHEMA_VERSION=4.0.0
SCHEMA="$MINIPIPE_CACHE/hms-$HIVE_VERSION/hive-schema-$SCHEMA_VERSION.derby.sql"

dir=${MINIPIPE_HMS_DIR:-./.state/hms}
port=${MINIPIPE_HMS_PORT:-9083}
hdfs=${MINIPIPE_HMS_HDFS:-hdfs://127.0.0.1:8020}
s3env=${MINIPIPE_HMS_S3_ENV:-}
cmd=${1:-}; [ $# -gt 0 ] && shift
[ "$cmd" = up ] && [ -z "$s3env" ] && [ -f ./.state/s3/env ] && s3env=./.state/s3/env
while [ $# -gt 0 ]; do
  case $1 in
    --dir) dir=$2; shift 2 ;;
    --port) port=$2; shift 2 ;;
    --hdfs) hdfs=$2; shift 2 ;;
    --s3-env) s3env=$2; shift 2 ;;
    *) die "unknown option $1" ;;
  esac
done
mkdir -p "$dir"; dir=$(cd "$dir" && pwd)
conf=$dir/conf
pidfile=$dir/hms.pid

J17=(--add-opens=java.base/java.nio=ALL-UNNAMED --add-opens=java.base/java.net=ALL-UNNAMED --add-opens=java.base/java.lang=ALL-UNNAMED
  --add-opens=java.base/java.util=ALL-UNNAMED --add-opens=java.base/java.util.concurrent=ALL-UNNAMED
  --add-opens=java.base/java.util.concurrent.atomic=ALL-UNNAMED --add-opens=java.base/java.util.regex=ALL-UNNAMED
  --add-opens=java.base/java.lang.reflect=ALL-UNNAMED --add-opens=java.base/java.io=ALL-UNNAMED
  --add-opens=java.base/sun.nio.ch=ALL-UNNAMED -Djava.net.preferIPv4Stack=true -XX:+UseG1GC)

fetch_schema() {
  [ -s "$SCHEMA" ] && return 0
  local tmp member
  tmp=$(mktemp -d)
  log "fetching Hive's Derby schema script (hive-standalone-metastore-server $HIVE_DEPS_VERSION bin tarball, ~80 MB, cached in ~/.m2)"
  mvn -q -B "$MDP:copy" -Dartifact="org.apache.hive:hive-standalone-metastore-server:$HIVE_DEPS_VERSION:tar.gz:bin" -DoutputDirectory="$tmp" >&2 \
    || die "maven could not fetch org.apache.hive:hive-standalone-metastore-server:$HIVE_DEPS_VERSION:tar.gz:bin"
  member="apache-hive-metastore-$HIVE_DEPS_VERSION-bin/scripts/metastore/upgrade/derby/hive-schema-$SCHEMA_VERSION.derby.sql"
  tar -xzf "$tmp/hive-standalone-metastore-server-$HIVE_DEPS_VERSION-bin.tar.gz" -C "$tmp" "$member" || die "no $member in the tarball"
  mv "$tmp/$member" "$SCHEMA.partial" && mv "$SCHEMA.partial" "$SCHEMA"
  rm -rf "$tmp"
}
fetch() { with_lock "hms-$HIVE_VERSION" maven_copy_deps "$DEPLOY_DIR/hms/pom.xml" "$LIBS"; with_lock "hms-$HIVE_VERSION-schema" fetch_schema; }

# init_schema: a new Derby database made by Hive's schema script (every table, the transaction and lock tables
# too); ij goes on after a failed statement, so its output is checked.
init_schema() {
  [ -d "$dir/metastore_db" ] && return 0
  log "creating the metastore's Derby database from hive-schema-$SCHEMA_VERSION.derby.sql"
  local ok=1
  "$(java17)" "-Dij.database=jdbc:derby:;databaseName=$dir/metastore_db;create=true" "-Dderby.stream.error.file=$dir/derby.log" \
    -cp "$(ls "$LIBS"/derby-[0-9]*.jar):$(ls "$LIBS"/derbytools-*.jar)" org.apache.derby.tools.ij "$SCHEMA" > "$dir/schema.log" 2>&1 || ok=0
  grep -q -E "^(ERROR|IJ ERROR)" "$dir/schema.log" && ok=0
  [ "$ok" = 1 ] && return 0
  grep -E -B2 "^(ERROR|IJ ERROR)" "$dir/schema.log" | head -20 >&2
  rm -rf "$dir/metastore_db"
  die "Hive's schema script failed on Derby; log: $dir/schema.log"
}

start() {
  if pid_alive "$pidfile"; then log "metastore already running (pid $(cat "$pidfile"))"; return 0; fi
  fetch
  init_schema
  mkdir -p "$conf"
  cp "$DEPLOY_DIR/hms/log4j2.properties" "$conf/"
  local s3conf=""
  if [ -n "$s3env" ]; then
    [ -f "$s3env" ] || die "no S3 env file $s3env (deploy/s3/s3.sh start writes it)"
    # shellcheck disable=SC1090
    source "$s3env"
    [ -n "${AWS_ACCESS_KEY_ID:-}" ] && [ -n "${AWS_SECRET_ACCESS_KEY:-}" ] || die "$s3env gives no AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
    [[ ${MINIPIPE_S3_ENDPOINT:-} =~ ^https?://[A-Za-z0-9.-]+(:[0-9]+)?/?$ ]] || die "$s3env gives no MINIPIPE_S3_ENDPOINT=http(s)://host[:port]"
    local ssl=true; case $MINIPIPE_S3_ENDPOINT in http://*) ssl=false ;; esac
    s3conf="  <property><name>fs.s3a.endpoint</name><value>$MINIPIPE_S3_ENDPOINT</value></property>
  <property><name>fs.s3a.endpoint.region</name><value>${AWS_REGION:-us-east-1}</value></property>
  <property><name>fs.s3a.path.style.access</name><value>true</value></property>
  <property><name>fs.s3a.connection.ssl.enabled</name><value>$ssl</value></property>
  <property><name>fs.s3a.aws.credentials.provider</name><value>software.amazon.awssdk.auth.credentials.EnvironmentVariableCredentialsProvider</value></property>
  <property><name>fs.s3a.attempts.maximum</name><value>3</value></property>
  <property><name>fs.s3a.retry.limit</name><value>3</value></property>"
    export AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_REGION
  fi
  cat > "$conf/metastore-site.xml" <<XML
<configuration>
  <property><name>metastore.thrift.port</name><value>$port</value></property>
  <property><name>metastore.thrift.uris</name><value>thrift://127.0.0.1:$port</value></property>
  <property><name>javax.jdo.option.ConnectionURL</name><value>jdbc:derby:;databaseName=$dir/metastore_db;create=true</value></property>
  <property><name>javax.jdo.option.ConnectionDriverName</name><value>org.apache.derby.jdbc.EmbeddedDriver</value></property>
  <property><name>datanucleus.schema.autoCreateAll</name><value>true</value></property>
  <property><name>metastore.schema.verification</name><value>false</value></property>
  <property><name>hive.metastore.schema.verification</name><value>false</value></property>
  <property><name>metastore.warehouse.dir</name><value>$hdfs/warehouse/managed</value></property>
  <property><name>metastore.warehouse.external.dir</name><value>$hdfs/warehouse/external</value></property>
  <property><name>fs.defaultFS</name><value>$hdfs</value></property>
  <property><name>metastore.event.db.notification.api.auth</name><value>false</value></property>
  <property><name>metastore.metadata.transformer.class</name><value> </value></property>
  <property><name>hive.metastore.disallow.incompatible.col.type.changes</name><value>false</value></property>
  <!-- Housekeeping on this (the only) metastore: its acid housekeeper frees the table locks of a client that
       died holding one (Iceberg commits take one; a SIGKILLed writer never releases it) after
       metastore.txn.timeout without a heartbeat. Iceberg commits hold theirs for well under a second; one that
       outlives the timeout is still safe (minipipe swaps the metadata location only if unchanged). -->
  <property><name>metastore.housekeeping.leader.election</name><value>host</value></property>
  <property><name>metastore.housekeeping.threads.on</name><value>true</value></property>
  <property><name>metastore.txn.timeout</name><value>30s</value></property>
  <property><name>metastore.acid.housekeeper.interval</name><value>5s</value></property>
  <!-- The housekeeping tasks of a metastore without ACID tables or the Iceberg handler: the lock and
       transaction timeouts (Hive's default list names the Iceberg handler's task, not on the class path). -->
  <property><name>metastore.task.threads.remote</name><value>org.apache.hadoop.hive.metastore.txn.service.AcidHouseKeeperService,org.apache.hadoop.hive.metastore.txn.service.AcidTxnCleanerService</value></property>
  <property><name>metastore.compactor.initiator.on</name><value>false</value></property>
  <property><name>metastore.compactor.cleaner.on</name><value>false</value></property>
  <property><name>metastore.thrift.bind.host</name><value>127.0.0.1</value></property>
$s3conf
</configuration>
XML
  log "starting Hive Metastore $HIVE_VERSION on thrift://127.0.0.1:$port (Derby in $dir${s3env:+; S3A on $MINIPIPE_S3_ENDPOINT})"
  nohup "$(java17)" "${J17[@]}" -Xmx768m "-Dlog4j2.configurationFile=$conf/log4j2.properties" "-Dderby.stream.error.file=$dir/derby.log" -cp "$conf:$LIBS/hive-exec-$HIVE_VERSION.jar:$LIBS/*" \
    org.apache.hadoop.hive.metastore.HiveMetaStore -p "$port" >> "$dir/hms.log" 2>&1 &
  echo $! > "$pidfile"
  wait_port "$port" 180 "$pidfile" || { tail -40 "$dir/hms.log" >&2; die "the metastore did not start; log: $dir/hms.log"; }
  log "Hive Metastore is up: thrift://127.0.0.1:$port"
}

case $cmd in
  fetch) fetch ;;
  start|up) start ;;
  stop|down) stop_pid "$pidfile" 30 ;;
  kill) [ -f "$pidfile" ] && kill -KILL "$(cat "$pidfile")" 2>/dev/null; rm -f "$pidfile" ;;
  status) if pid_alive "$pidfile"; then echo "running: thrift://127.0.0.1:$port"; else echo stopped; exit 1; fi ;;
  *) sed -n '2,17p' "$0"; exit 2 ;;
esac
