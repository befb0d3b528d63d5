#!/usr/bin/env bash
# Shared helpers for the scripts that fetch and run minipipe's real services (Kafka, later HDFS, the Hive
# Metastore and Trino) as plain processes on 127.0.0.1. Everything downloaded is cached under
# $MINIPIPE_CACHE (default ~/.cache/minipipe) and Maven's own ~/.m2, so a second run starts offline.
set -euo pipefail

MINIPIPE_CACHE=${MINIPIPE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/minipipe}
MDP=org.apache.maven.plugins:maven-dependency-plugin:3.8.1
DEPLOY_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

log() { printf '%s %s\n' "[$(date +%H:%M:%S)]" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# with_lock NAME CMD...: run CMD while holding an exclusive lock, so parallel test processes that need the
# same download wait for one another instead of racing.
with_lock() {
  local name=$1; shift
  mkdir -p "$MINIPIPE_CACHE/locks"
  (
    flock -w 900 9 || die "timed out waiting for lock $name"
    "$@"
  ) 9>"$MINIPIPE_CACHE/locks/$name.lock"
}

# maven_copy_deps POM DEST: copy the runtime dependency closure of POM into DEST once; a marker file makes it
# idempotent (until the POM changes: the marker holds its hash) and a half-finished copy is never mistaken for a
# complete one.
maven_copy_deps() {
  local pom=$1 dest=$2 sum
  sum=$(sha256sum "$pom" | cut -c1-16)
  [ "$(cat "$dest/.complete" 2>/dev/null)" = "$sum" ] && return 0
  command -v mvn >/dev/null || die "mvn not found: install Maven (Debian package maven)"
  log "fetching $(basename "$(dirname "$pom")") jars from Maven Central into $dest"
  rm -rf "$dest.partial"
  mvn -q -B -f "$pom" "$MDP:copy-dependencies" -DincludeScope=runtime -DoutputDirectory="$dest.partial" >&2 \
    || die "maven could not fetch the dependencies of $pom"
  rm -rf "$dest"; mv "$dest.partial" "$dest"; echo "$sum" > "$dest/.complete"
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# wait_port PORT SECONDS PIDFILE: wait until PORT accepts connections, failing early if the process died.
wait_port() {
  local port=$1 secs=$2 pidfile=$3 i
  for ((i = 0; i < secs * 4; i++)); do
    port_open "$port" && return 0
    if [ -f "$pidfile" ] && ! kill -0 "$(cat "$pidfile")" 2>/dev/null; then return 1; fi
    sleep 0.25
  done
  return 1
}

# free_port: a TCP port on 127.0.0.1 that is free, and so is the next one (Kafka's controller takes it).
free_port() {
  local p
  for _ in $(seq 100); do
    p=$((15000 + RANDOM % 17000)) # below the ephemeral range, as testkit.FreePort
    if ! port_open "$p" && ! port_open $((p + 1)); then echo "$p"; return; fi
  done
  die "no free port"
}

# peak_rss NAME PID: print the peak resident set (VmHWM) of a still-running process.
peak_rss() {
  [ -n "$2" ] && [ -r "/proc/$2/status" ] || return 0
  printf '  %-9s %s\n' "$1" "$(awk '/VmHWM/ {printf "%.0f MiB", $2/1024}' "/proc/$2/status")" >&2
}

# The services of a test or benchmark run live in one directory, ROOT/{kafka,hdfs,hms,trino,s3}.
# stack_kill ROOT: SIGKILL every one of them that runs.
stack_kill() {
  "$DEPLOY_DIR/trino/trino.sh" kill --dir "$1/trino" >/dev/null 2>&1 || true
  "$DEPLOY_DIR/hms/hms.sh" kill --dir "$1/hms" >/dev/null 2>&1 || true
  "$DEPLOY_DIR/hdfs/hdfs.sh" kill --dir "$1/hdfs" >/dev/null 2>&1 || true
  "$DEPLOY_DIR/kafka/kafka.sh" kill --dir "$1/kafka" >/dev/null 2>&1 || true
  [ -f "$1/s3/moto.pid" ] && { kill -KILL "$(cat "$1/s3/moto.pid")" 2>/dev/null || true; }
  [ -f "$1/iceberg-rest/rest.pid" ] && { kill -KILL "$(cat "$1/iceberg-rest/rest.pid")" 2>/dev/null || true; }
  return 0
}

# stack_report ROOT: the peak resident memory of each service still running there.
stack_report() {
  local name file
  for name in kafka/kafka namenode:hdfs/namenode datanode:hdfs/datanode metastore:hms/hms trino/trino s3:s3/moto iceberg-rest:iceberg-rest/rest; do
    file=${name#*:}; name=${name%%:*}; name=${name%%/*}
    peak_rss "$name" "$(cat "$1/$file.pid" 2>/dev/null)"
  done
}

pid_alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

# stop_pid PIDFILE [SECONDS]: SIGTERM (a controlled shutdown), then SIGKILL after SECONDS.
stop_pid() {
  local pidfile=$1 secs=${2:-30} pid i
  [ -f "$pidfile" ] || return 0
  pid=$(cat "$pidfile")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < secs * 4; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    kill -0 "$pid" 2>/dev/null && { log "pid $pid did not stop in ${secs}s; killing it"; kill -KILL "$pid" 2>/dev/null || true; }
  fi
  rm -f "$pidfile"
}

java17() {
  if [ -n "${JAVA_HOME:-}" ] && [ -x "$JAVA_HOME/bin/java" ]; then echo "$JAVA_HOME/bin/java"; return; fi
  local j
  for j in /usr/lib/jvm/java-17-openjdk-amd64/bin/java /usr/lib/jvm/java-17-openjdk-arm64/bin/java; do
    [ -x "$j" ] && { echo "$j"; return; }
  done
  command -v java >/dev/null || die "no java found: install OpenJDK 17"
  command -v java
}

# apt_install PKG...: install Debian packages with apt-get, as root or through sudo without a password; a
# machine where neither works gets a clear error naming them.
apt_install() {
  local sudo=
  if [ "$(id -u)" != 0 ]; then
    sudo -n true 2>/dev/null || die "missing Debian packages $*: apt-get needs root: run 'apt-get install $*' as root"
    sudo="sudo -n"
  fi
  log "installing Debian's $* with apt-get (once per machine)"
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -q >&2 || die "apt-get update failed"
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" >&2 || die "apt-get install $* failed"
}
