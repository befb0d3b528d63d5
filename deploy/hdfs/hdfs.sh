#!/usr/bin/env bash
# Fetch, start and stop a real HDFS — one NameNode and one DataNode — from Maven Central jars (Hadoop 3.4),
# as plain processes on 127.0.0.1.
#
#   hdfs.sh fetch                            download the jars once (cached)
#   hdfs.sh start [--dir D] [--port P]       NameNode RPC on 127.0.0.1:P (default 8020); waits for safe mode off
#   hdfs.sh stop  [--dir D]                  SIGTERM, then SIGKILL after 30 s
#   hdfs.sh kill  [--dir D]                  SIGKILL both daemons (crash tests)
#   hdfs.sh stop-namenode / start-namenode [--dir D] [--port P]   only the NameNode (outage tests)
#   hdfs.sh status [--dir D]
#   hdfs.sh up | down                        the default instance: ./.state/hdfs on 127.0.0.1:8020
source "$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/lib.sh"

HADOOP_VERSION=$(sed -n 's:.*<hadoop.version>\(.*\)</hadoop.version>.*:\1:p' "$DEPLOY_DIR/hdfs/pom.xml")
LIBS="$MINIPIPE_CACHE/hdfs-$HADOOP_VERSION/libs"

dir=${MINIPIPE_HDFS_DIR:-./.state/hdfs}
port=${MINIPIPE_HDFS_PORT:-8020}
cmd=${1:-}; [ $# -gt 0 ] && shift
while [ $# -gt 0 ]; do
  case $1 in
    --dir) dir=$2; shift 2 ;;
    --port) port=$2; shift 2 ;;
    *) die "unknown option $1" ;;
  esac
done
mkdir -p "$dir"; dir=$(cd "$dir" && pwd)
conf=$dir/conf

# Hadoop 3.4 on Java 17 needs these opens (HADOOP-19310 added them to Hadoop's own launch scripts).
J17=(--add-opens=java.base/java.lang=ALL-UNNAMED --add-opens=java.base/java.lang.reflect=ALL-UNNAMED
  --add-opens=java.base/java.io=ALL-UNNAMED --add-opens=java.base/java.net=ALL-UNNAMED --add-opens=java.base/java.nio=ALL-UNNAMED
  --add-opens=java.base/java.util=ALL-UNNAMED --add-opens=java.base/java.util.concurrent=ALL-UNNAMED
  --add-opens=java.base/java.util.concurrent.atomic=ALL-UNNAMED --add-opens=java.base/java.util.regex=ALL-UNNAMED
  --add-opens=java.base/sun.nio.ch=ALL-UNNAMED --add-opens=java.base/sun.security.action=ALL-UNNAMED
  --add-opens=java.base/sun.security.util=ALL-UNNAMED --add-opens=java.base/sun.security.x509=ALL-UNNAMED
  -Djava.net.preferIPv4Stack=true -XX:+UseG1GC)

fetch() { with_lock "hdfs-$HADOOP_VERSION" maven_copy_deps "$DEPLOY_DIR/hdfs/pom.xml" "$LIBS"; }

write_conf() {
  mkdir -p "$conf"
  # The daemons' web UIs look for webapps/<name> on the classpath, which Hadoop's distribution ships beside
  # its jars, not in them: empty ones are enough.
  for w in hdfs datanode secondary static; do mkdir -p "$conf/webapps/$w/WEB-INF"; done
  for w in hdfs datanode secondary; do
    [ -f "$conf/webapps/$w/WEB-INF/web.xml" ] || echo '<web-app xmlns="http://xmlns.jcp.org/xml/ns/javaee" version="3.1"/>' > "$conf/webapps/$w/WEB-INF/web.xml"
  done
  cp "$DEPLOY_DIR/hdfs/log4j.properties" "$conf/"
  cat > "$conf/core-site.xml" <<XML
<configuration>
  <property><name>fs.defaultFS</name><value>hdfs://127.0.0.1:$port</value></property>
  <property><name>hadoop.tmp.dir</name><value>$dir/tmp</value></property>
</configuration>
XML
  cat > "$conf/hdfs-site.xml" <<XML
<configuration>
  <property><name>dfs.namenode.name.dir</name><value>file://$dir/name</value></property>
  <property><name>dfs.datanode.data.dir</name><value>file://$dir/data</value></property>
  <property><name>dfs.replication</name><value>1</value></property>
  <property><name>dfs.permissions.enabled</name><value>false</value></property>
  <property><name>dfs.namenode.rpc-address</name><value>127.0.0.1:$port</value></property>
  <property><name>dfs.namenode.http-address</name><value>127.0.0.1:0</value></property>
  <property><name>dfs.datanode.address</name><value>127.0.0.1:0</value></property>
  <property><name>dfs.datanode.http.address</name><value>127.0.0.1:0</value></property>
  <property><name>dfs.datanode.ipc.address</name><value>127.0.0.1:0</value></property>
  <property><name>dfs.namenode.safemode.extension</name><value>0</value></property>
  <property><name>dfs.namenode.datanode.registration.ip-hostname-check</name><value>false</value></property>
  <property><name>dfs.namenode.heartbeat.recheck-interval</name><value>10000</value></property>
  <property><name>dfs.heartbeat.interval</name><value>1</value></property>
  <property><name>dfs.blocksize</name><value>16777216</value></property>
  <!-- A completed file is on the DataNode's disk, not only in its page cache. -->
  <property><name>dfs.datanode.synconclose</name><value>true</value></property>
</configuration>
XML
}

java_run() { # name heap class args…
  local name=$1 heap=$2; shift 2
  nohup "$(java17)" "${J17[@]}" "-Xmx$heap" -Dhadoop.log.dir="$dir/logs" -cp "$conf:$LIBS/*" "$@" >> "$dir/$name.log" 2>&1 &
  echo $! > "$dir/$name.pid"
}

start_namenode() {
  if pid_alive "$dir/namenode.pid"; then return 0; fi
  java_run namenode 512m org.apache.hadoop.hdfs.server.namenode.NameNode
  wait_port "$port" 90 "$dir/namenode.pid" || { tail -30 "$dir/namenode.log" >&2; die "the NameNode did not start; log: $dir/namenode.log"; }
}

start() {
  if pid_alive "$dir/namenode.pid" && pid_alive "$dir/datanode.pid"; then
    log "HDFS already running: hdfs://127.0.0.1:$port ($dir)"; return 0
  fi
  fetch
  write_conf
  if [ ! -d "$dir/name/current" ]; then
    "$(java17)" "${J17[@]}" -Xmx256m -cp "$conf:$LIBS/*" org.apache.hadoop.hdfs.server.namenode.NameNode -format -force -nonInteractive \
      > "$dir/format.log" 2>&1 || { cat "$dir/format.log" >&2; die "formatting the NameNode failed"; }
  fi
  log "starting HDFS $HADOOP_VERSION, NameNode on 127.0.0.1:$port (data in $dir)"
  # Ready once the DataNode has registered with this NameNode and sent its block report (it does again
  # after a NameNode restart), and safe mode is off.
  local from; from=$({ wc -l < "$dir/datanode.log"; } 2>/dev/null || echo 0)
  start_namenode
  pid_alive "$dir/datanode.pid" || java_run datanode 384m org.apache.hadoop.hdfs.server.datanode.DataNode
  local i
  for ((i = 0; i < 360; i++)); do
    tail -n +"$((from + 1))" "$dir/datanode.log" 2>/dev/null | grep -q "Successfully sent block report" && break
    pid_alive "$dir/datanode.pid" || { tail -30 "$dir/datanode.log" >&2; die "the DataNode died; log: $dir/datanode.log"; }
    sleep 0.25
  done
  [ "$i" -lt 360 ] || die "the DataNode did not register with the NameNode in 90 s; log: $dir/datanode.log"
  "$(java17)" "${J17[@]}" -Xmx128m -cp "$conf:$LIBS/*" org.apache.hadoop.hdfs.tools.DFSAdmin -safemode wait > "$dir/safemode.log" 2>&1 \
    || { cat "$dir/safemode.log" >&2; die "HDFS did not leave safe mode"; }
  log "HDFS is up: hdfs://127.0.0.1:$port"
}

stop_all() { stop_pid "$dir/datanode.pid" 30; stop_pid "$dir/namenode.pid" 30; }
kill_all() {
  for d in datanode namenode; do [ -f "$dir/$d.pid" ] && kill -KILL "$(cat "$dir/$d.pid")" 2>/dev/null; rm -f "$dir/$d.pid"; done
  return 0
}

case $cmd in
  fetch) fetch ;;
  start|up) start ;;
  stop|down) stop_all ;;
  kill) kill_all ;;
  stop-namenode) stop_pid "$dir/namenode.pid" 30 ;;
  start-namenode) start ;;
  status) if pid_alive "$dir/namenode.pid" && pid_alive "$dir/datanode.pid"; then echo "running: hdfs://127.0.0.1:$port ($dir)"; else echo stopped; exit 1; fi ;;
  *) sed -n '2,14p' "$0"; exit 2 ;;
esac
