#!/usr/bin/env bash
# Local single-node Apache Kafka (KRaft: broker + controller in one JVM) for development and tests.
#
#   deploy/kafka.sh fetch    download the broker jars with Maven into the cache (once; then offline)
#   deploy/kafka.sh start    start in the background and wait until it answers (idempotent)
#   deploy/kafka.sh stop     SIGTERM, wait, SIGKILL if needed, check the ports are free (idempotent)
#   deploy/kafka.sh status   exit 0 = running and answering, 3 = not running, 1 = up but not answering
#   deploy/kafka.sh wait     wait until the broker answers (KAFKA_START_TIMEOUT seconds)
#   deploy/kafka.sh logs     last lines of the server log (logs -f to follow, logs 500 for more)
#   deploy/kafka.sh reset    stop, then delete this port's data (topics, offsets, logs, cluster id)
#   deploy/kafka.sh kill     SIGKILL this port's broker (fault tests; only the pid this script started)
#   deploy/kafka.sh launch   like start, but return once the JVM runs, without waiting for it to answer
#   deploy/kafka.sh cluster ...  a local cluster of 3 KRaft brokers: see deploy/kafka-cluster.sh
#
# Environment (all optional):
#   KAFKA_PORT             client listener on 127.0.0.1 (default 9092)
#   KAFKA_CONTROLLER_PORT  KRaft controller listener on 127.0.0.1 (default KAFKA_PORT + 1000)
#   KAFKA_VERSION          Apache Kafka version to fetch and run (default 3.9.2)
#   CONSENTINEL_HOME       cache root (default $HOME/.cache/consentinel); jars in kafka-<version>/lib,
#                          data and logs in kafka-data-<port>/
#   KAFKA_HEAP_OPTS        default "-Xms512m -Xmx1g"
#   KAFKA_START_TIMEOUT    seconds to wait for the broker to answer while its log shows no
#                          progress (default 60); loading a large data dir keeps extending it
#   KAFKA_START_MAX        the longest start-up wait, progress or not (default 900)
#   KAFKA_STOP_TIMEOUT     seconds to wait after SIGTERM before SIGKILL (default 30)
# Set by deploy/kafka-cluster.sh for each node of a local cluster (rarely by hand):
#   KAFKA_DATA_DIR         this node's data dir (default $CONSENTINEL_HOME/kafka-data-<port>)
#   KAFKA_NODE_ID          node.id (default 1)
#   KAFKA_QUORUM_VOTERS    controller.quorum.voters (default: this node alone)
#   KAFKA_CLUSTER_ID       the cluster id to format with (default: a random one, kept)
#   KAFKA_REPLICATION      replication factor of internal topics and default.replication.factor;
#                          3 also sets min.insync.replicas=2 (default 1)
# See deploy/README.md.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
POM="$SCRIPT_DIR/kafka/pom.xml"

KAFKA_VERSION="${KAFKA_VERSION:-3.9.2}"
KAFKA_PORT="${KAFKA_PORT:-9092}"
CONSENTINEL_HOME="${CONSENTINEL_HOME:-$HOME/.cache/consentinel}"
KAFKA_HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xms512m -Xmx1g}"
KAFKA_START_TIMEOUT="${KAFKA_START_TIMEOUT:-60}"
KAFKA_START_MAX="${KAFKA_START_MAX:-900}"
KAFKA_STOP_TIMEOUT="${KAFKA_STOP_TIMEOUT:-30}"

PROG="deploy/kafka.sh"
HOST=127.0.0.1

say()  { printf 'kafka: %s\n' "$*"; }
warn() { printf 'kafka: %s\n' "$*" >&2; }
die()  { local rc=$1; shift; printf 'kafka: ERROR: %s\n' "$*" >&2; exit "$rc"; }

is_port() { [[ "$1" =~ ^[0-9]+$ ]] && (( 10#$1 >= 1 && 10#$1 <= 65535 )); }

validate_ports() {
  is_port "$KAFKA_PORT" || die 2 "KAFKA_PORT='$KAFKA_PORT' is not a TCP port number (1-65535)."
  KAFKA_PORT=$((10#$KAFKA_PORT))
  KAFKA_CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-$((KAFKA_PORT + 1000))}"
  is_port "$KAFKA_CONTROLLER_PORT" ||
    die 2 "controller port '$KAFKA_CONTROLLER_PORT' is not a TCP port number (1-65535); set KAFKA_CONTROLLER_PORT=<free port>."
  KAFKA_CONTROLLER_PORT=$((10#$KAFKA_CONTROLLER_PORT))
  (( KAFKA_CONTROLLER_PORT != KAFKA_PORT )) ||
    die 2 "KAFKA_CONTROLLER_PORT must differ from KAFKA_PORT (both are $KAFKA_PORT)."
}
validate_ports
for _v in KAFKA_START_TIMEOUT KAFKA_START_MAX KAFKA_STOP_TIMEOUT; do
  [[ "${!_v}" =~ ^[0-9]+$ ]] || die 2 "$_v='${!_v}' must be a whole number of seconds."
done
# Absolute, so the pid/cmdline checks work from any working directory.
CONSENTINEL_HOME=$(realpath -m -- "$CONSENTINEL_HOME")

KAFKA_HOME_DIR="$CONSENTINEL_HOME/kafka-$KAFKA_VERSION"
LIB="$KAFKA_HOME_DIR/lib"
MARKER="$LIB/.complete"
DATA_DIR=$(realpath -m -- "${KAFKA_DATA_DIR:-$CONSENTINEL_HOME/kafka-data-$KAFKA_PORT}")
KAFKA_NODE_ID="${KAFKA_NODE_ID:-1}"
KAFKA_QUORUM_VOTERS="${KAFKA_QUORUM_VOTERS:-$KAFKA_NODE_ID@$HOST:$KAFKA_CONTROLLER_PORT}"
KAFKA_REPLICATION="${KAFKA_REPLICATION:-1}"
[[ "$KAFKA_NODE_ID" =~ ^[0-9]+$ ]] || die 2 "KAFKA_NODE_ID='$KAFKA_NODE_ID' must be a whole number."
[[ "$KAFKA_REPLICATION" =~ ^[1-9]$ ]] || die 2 "KAFKA_REPLICATION='$KAFKA_REPLICATION' must be 1 to 9."
MIN_ISR=1
(( KAFKA_REPLICATION >= 3 )) && MIN_ISR=2
LOG_DIRS="$DATA_DIR/kraft-combined-logs"     # topic data (Kafka's log.dirs)
LOGS="$DATA_DIR/logs"                        # server.log, controller.log, kafka.out, gc.log
PROPS="$DATA_DIR/server.properties"
LOCAL_PROPS="$DATA_DIR/server.local.properties"
LOG4J="$DATA_DIR/log4j.properties"
PIDFILE="$DATA_DIR/kafka.pid"
CLUSTER_ID_FILE="$DATA_DIR/cluster.id"
SERVER_LOG="$LOGS/server.log"
STDOUT_LOG="$LOGS/kafka.out"

# ---------------------------------------------------------------------------------------------
# Tools: java (to run) and mvn (only for the first fetch).

install_hint() {
  echo "Install Java 17 and Maven, e.g. on Debian/Ubuntu: sudo apt-get update && sudo apt-get install -y openjdk-17-jre-headless maven"
}

apt_install_tools() {
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
    say "$1 not found; installing openjdk-17-jre-headless and maven with apt-get (running as root) ..."
    DEBIAN_FRONTEND=noninteractive apt-get update -q &&
      DEBIAN_FRONTEND=noninteractive apt-get install -y -q openjdk-17-jre-headless maven ||
      die 1 "apt-get could not install Java/Maven (see output above). $(install_hint)"
    hash -r
    command -v "$1" >/dev/null 2>&1 ||
      die 1 "apt-get finished but '$1' is still not on PATH ($PATH). $(install_hint)"
  else
    local why="Kafka runs on Java"
    [[ $1 == mvn ]] && why="Maven is needed once, to download the Kafka jars into $LIB"
    die 1 "'$1' is not on PATH ($why). $(install_hint)"
  fi
}

need_java() {
  command -v java >/dev/null 2>&1 || apt_install_tools java
  local v
  v=$(java -version 2>&1 | sed -n 's/.*version "\([0-9]*\)[."].*/\1/p' | head -n1)
  if [[ -n "$v" && "$v" =~ ^[0-9]+$ ]] && (( v < 11 )); then
    die 1 "java on PATH is version $v; Kafka $KAFKA_VERSION needs Java 11+ (17 recommended). $(install_hint)"
  fi
}

need_mvn() {
  command -v mvn >/dev/null 2>&1 || apt_install_tools mvn
}

# ---------------------------------------------------------------------------------------------
# fetch: resolve the jars with Maven into $LIB, once.

lib_complete() {
  [[ -f "$MARKER" && -f "$LIB/kafka_2.13-$KAFKA_VERSION.jar" ]]
}

cmd_fetch() {
  if lib_complete; then
    say "Kafka $KAFKA_VERSION jars already in $LIB ($(grep -c . "$LIB/.jars" 2>/dev/null || echo '?') jars); nothing to download."
    return 0
  fi
  need_java
  need_mvn
  [[ -f "$POM" ]] || die 1 "missing $POM (is this a complete checkout?)"
  mkdir -p "$KAFKA_HOME_DIR"
  exec 8>"$KAFKA_HOME_DIR/.fetch.lock"
  if command -v flock >/dev/null 2>&1; then
    flock -w 600 8 || die 1 "another '$PROG fetch' has held $KAFKA_HOME_DIR/.fetch.lock for 10 minutes; is it stuck?"
  fi
  if lib_complete; then  # someone else finished while we waited for the lock
    exec 8>&-
    return 0
  fi
  local tmp="$KAFKA_HOME_DIR/lib.tmp.$$" t0=$SECONDS
  rm -rf "$tmp"
  say "downloading Apache Kafka $KAFKA_VERSION and its dependencies with Maven into $LIB (first run only, about 50 MB) ..."
  if ! mvn -B -q -Dstyle.color=never -f "$POM" -Dkafka.version="$KAFKA_VERSION" \
        dependency:copy-dependencies -DoutputDirectory="$tmp" >"$KAFKA_HOME_DIR/fetch.log" 2>&1; then
    tail -n 30 "$KAFKA_HOME_DIR/fetch.log" >&2 || true
    rm -rf "$tmp"
    die 1 "Maven could not download Kafka $KAFKA_VERSION (full output: $KAFKA_HOME_DIR/fetch.log).
  Check the network / proxy (~/.m2/settings.xml), and that version $KAFKA_VERSION exists (KAFKA_VERSION=...).
  To use a cluster you already have instead, set CONSENTINEL_BOOTSTRAP_SERVERS=host:port and skip this script."
  fi
  [[ -f "$tmp/kafka_2.13-$KAFKA_VERSION.jar" ]] ||
    { rm -rf "$tmp"; die 1 "Maven finished but kafka_2.13-$KAFKA_VERSION.jar is not in the result; see $KAFKA_HOME_DIR/fetch.log"; }
  (cd "$tmp" && ls -1 ./*.jar | sed 's|^\./||' >.jars)
  rm -rf "$LIB"
  mv "$tmp" "$LIB"
  printf 'kafka %s\nfetched %s\n' "$KAFKA_VERSION" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" >"$MARKER"
  exec 8>&-
  say "fetched $(grep -c . "$LIB/.jars") jars in $((SECONDS - t0)) s into $LIB"
}

# ---------------------------------------------------------------------------------------------
# Process and port helpers.

proc_alive() {  # pid -> alive and not a zombie
  local pid=$1 state
  [[ -n "$pid" && -r "/proc/$pid/stat" ]] || return 1
  state=$(sed 's/^.*) \(.\).*/\1/' "/proc/$pid/stat" 2>/dev/null) || return 1
  [[ "$state" != Z && "$state" != X ]]
}

is_our_broker() {  # pid -> it is kafka.Kafka running *this* data dir's server.properties
  local pid=$1 cmd
  proc_alive "$pid" || return 1
  cmd=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
  [[ "$cmd" == *" kafka.Kafka $PROPS"* ]]
}

broker_pid() {  # prints the pid of our broker: the pid file's, if that process runs our config
  # Only the pid this script wrote, and only if its command line is still our broker's:
  # never a process found by name (a pid file can outlive its process, and pids get reused).
  local pid=""
  [[ -f "$PIDFILE" ]] && pid=$(tr -dc '0-9' <"$PIDFILE" 2>/dev/null || true)
  if [[ -n "$pid" ]] && is_our_broker "$pid"; then echo "$pid"; return 0; fi
  return 1
}

orphan_note() {  # a broker of this data dir whose pid file is lost: name it, touch nothing
  local d pid
  for d in /proc/[0-9]*; do
    pid=${d#/proc/}
    if is_our_broker "$pid"; then
      warn "a broker for $DATA_DIR runs as pid $pid, but $PIDFILE does not name it, so this script leaves it alone. Stop it yourself if it is yours (kill $pid), or write its pid to $PIDFILE."
      return 0
    fi
  done
  return 1
}

port_open() {  # port -> something accepts TCP connections on 127.0.0.1:port
  timeout 2 bash -c "exec 3<>/dev/tcp/$HOST/$1" 2>/dev/null
}

port_owner() {  # port -> "pid 123 (java ...)" if ss can tell, else empty
  command -v ss >/dev/null 2>&1 || return 0
  local line pid
  line=$(ss -Hltnp "sport = :$1" 2>/dev/null | head -n1) || return 0
  pid=$(sed -n 's/.*pid=\([0-9]*\).*/\1/p' <<<"$line" | head -n1)
  if [[ -n "$pid" && -r "/proc/$pid/cmdline" ]]; then
    echo "pid $pid ($(tr '\0' ' ' <"/proc/$pid/cmdline" | cut -c1-160 | sed 's/ *$//'))"
  fi
}

free_port_after() {  # port [exclude...] -> the next port above it that nothing listens on
  local p=$1 x ok; shift
  while (( ++p <= 65535 )); do
    ok=1
    for x in "$@"; do [[ $p == "$x" ]] && ok=""; done
    [[ -n "$ok" ]] && ! port_open "$p" && { echo "$p"; return; }
  done
  echo "<free port>"
}

# Real Kafka protocol check: send ApiVersions v0 (correlation id 42) and expect error_code 0.
kafka_answers() {
  local out
  out=$(timeout 3 bash -c '
    exec 3<>/dev/tcp/'"$HOST/$KAFKA_PORT"' || exit 1
    printf "\x00\x00\x00\x0e\x00\x12\x00\x00\x00\x00\x00\x2a\x00\x04ping" >&3
    head -c 10 <&3 | od -An -tx1 -v' 2>/dev/null) || return 1
  out=$(echo $out)  # squeeze whitespace
  [[ "$out" =~ ^([0-9a-f]{2}\ ){4}00\ 00\ 00\ 2a\ 00\ 00$ ]]
}

log_says_started() {  # byte offset in server.log where this start began
  local off=$1 size
  [[ -f "$SERVER_LOG" ]] || return 1
  size=$(stat -c %s "$SERVER_LOG")
  (( size >= off )) || off=0  # the log rolled over since
  tail -c +"$((off + 1))" "$SERVER_LOG" | grep -q 'Kafka Server started'
}

show_last_logs() {  # lines [byte offset where this start began]
  local n=${1:-40} off=${2:-0} size recent first_error
  if [[ -s "$SERVER_LOG" ]]; then
    size=$(stat -c %s "$SERVER_LOG")
    (( size >= off )) || off=0
    # Leave out the KafkaConfig dump and stack frames (lines starting with a tab).
    recent=$(tail -c +"$((off + 1))" "$SERVER_LOG" | grep -v $'^\t' | grep -v '^ (kafka.server.KafkaConfig)' || true)
    warn "---- last $n lines of $SERVER_LOG from this start (config dump and stack frames left out) ----"
    tail -n "$n" <<<"$recent" >&2
    first_error=$(grep -m1 -A1 -E '^\[[^]]*\] (ERROR|FATAL)' <<<"$recent" || true)
    [[ -n "$first_error" ]] && { warn "---- first ERROR of this start ----"; printf '%s\n' "$first_error" >&2; }
  fi
  if [[ -s "$STDOUT_LOG" ]]; then
    warn "---- last 20 lines of $STDOUT_LOG (JVM stdout/stderr) ----"
    tail -n 20 "$STDOUT_LOG" >&2
  fi
  warn "----"
}

bootstrap_note() {
  local bs=${CONSENTINEL_BOOTSTRAP_SERVERS:-}
  if [[ -n "$bs" && ",$bs," != *",$HOST:$KAFKA_PORT,"* && ",$bs," != *",localhost:$KAFKA_PORT,"* ]]; then
    warn "note: CONSENTINEL_BOOTSTRAP_SERVERS=$bs, so consentinel will talk to that cluster, not to this local broker on $HOST:$KAFKA_PORT."
  fi
}

take_lock() {  # serialise start/stop/reset for one data dir (two test runs starting at once)
  mkdir -p "$DATA_DIR"
  exec 9>"$DATA_DIR/.lock"
  if command -v flock >/dev/null 2>&1; then
    flock -w $((KAFKA_START_MAX + KAFKA_STOP_TIMEOUT + 30)) 9 ||
      die 1 "another $PROG command holds $DATA_DIR/.lock and did not finish; check 'ps aux | grep kafka.sh'."
  fi
}

# ---------------------------------------------------------------------------------------------
# Configuration, generated on every start (edit via env vars or server.local.properties).

write_config() {
  mkdir -p "$LOG_DIRS" "$LOGS"
  cat >"$PROPS" <<EOF
# Generated by $PROG on every start -- do not edit; put overrides in
# $LOCAL_PROPS (appended below).
process.roles=broker,controller
node.id=$KAFKA_NODE_ID
controller.quorum.voters=$KAFKA_QUORUM_VOTERS
listeners=PLAINTEXT://$HOST:$KAFKA_PORT,CONTROLLER://$HOST:$KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://$HOST:$KAFKA_PORT
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$LOG_DIRS
num.network.threads=2
num.io.threads=2
num.recovery.threads.per.data.dir=1
num.partitions=1
auto.create.topics.enable=false
offsets.topic.replication.factor=$KAFKA_REPLICATION
transaction.state.log.replication.factor=$KAFKA_REPLICATION
transaction.state.log.min.isr=$MIN_ISR
default.replication.factor=$KAFKA_REPLICATION
min.insync.replicas=$MIN_ISR
group.initial.rebalance.delay.ms=0
log.retention.hours=168
log.retention.check.interval.ms=300000
EOF
  if [[ -f "$LOCAL_PROPS" ]]; then
    { echo; echo "# ---- from $LOCAL_PROPS ----"; cat "$LOCAL_PROPS"; } >>"$PROPS"
  fi

  cat >"$LOG4J" <<'EOF'
# Generated by deploy/kafka.sh. Everything goes to files under ${kafka.logs.dir}, nothing to the terminal.
log4j.rootLogger=INFO, server

log4j.appender.server=org.apache.log4j.RollingFileAppender
log4j.appender.server.File=${kafka.logs.dir}/server.log
log4j.appender.server.MaxFileSize=20MB
log4j.appender.server.MaxBackupIndex=5
log4j.appender.server.layout=org.apache.log4j.PatternLayout
log4j.appender.server.layout.ConversionPattern=[%d] %p %m (%c)%n

log4j.appender.controller=org.apache.log4j.RollingFileAppender
log4j.appender.controller.File=${kafka.logs.dir}/controller.log
log4j.appender.controller.MaxFileSize=20MB
log4j.appender.controller.MaxBackupIndex=3
log4j.appender.controller.layout=org.apache.log4j.PatternLayout
log4j.appender.controller.layout.ConversionPattern=[%d] %p %m (%c)%n

# Per-partition state changes and controller chatter: own file (tests create many topics).
log4j.logger.state.change.logger=INFO, controller
log4j.additivity.state.change.logger=false
log4j.logger.org.apache.kafka.controller=INFO, controller
log4j.additivity.org.apache.kafka.controller=false
log4j.logger.kafka.controller=INFO, controller
log4j.additivity.kafka.controller=false

log4j.logger.kafka.request.logger=WARN
log4j.logger.kafka.network.RequestChannel$=WARN
EOF
}

java_args() {  # sets JAVA_ARGS: JVM options and classpath (main class and its args follow)
  local heap=$1
  # shellcheck disable=SC2206  # heap and KAFKA_JVM_OPTS are word lists on purpose
  JAVA_ARGS=($heap -server -XX:+UseG1GC -XX:MaxGCPauseMillis=20
    -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent
    -Djava.awt.headless=true
    -Dkafka.logs.dir="$LOGS" -Dlog4j.configuration="file:$LOG4J"
    ${KAFKA_JVM_OPTS:-} -cp "$LIB/*")
}

new_cluster_id() {  # a random Kafka Uuid: 16 random bytes, base64url without padding
  local id
  while :; do
    id=$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')
    [[ ${#id} -eq 22 && "$id" != -* ]] && { echo "$id"; return; }
  done
}

format_storage() {
  [[ -f "$LOG_DIRS/meta.properties" ]] && return 0
  local cid
  if [[ -n "${KAFKA_CLUSTER_ID:-}" ]]; then
    cid=$KAFKA_CLUSTER_ID
    echo "$cid" >"$CLUSTER_ID_FILE"
  elif [[ -s "$CLUSTER_ID_FILE" ]]; then
    cid=$(tr -d ' \n' <"$CLUSTER_ID_FILE")
  else
    cid=$(new_cluster_id)
    echo "$cid" >"$CLUSTER_ID_FILE"
  fi
  say "formatting storage in $LOG_DIRS (cluster id $cid) ..."
  java_args "-Xms64m -Xmx256m"
  if ! java "${JAVA_ARGS[@]}" kafka.tools.StorageTool format \
        -t "$cid" -c "$PROPS" --ignore-formatted >"$LOGS/storage-format.log" 2>&1; then
    cat "$LOGS/storage-format.log" >&2 || true
    [[ -f "$LOCAL_PROPS" ]] && warn "note: your overrides in $LOCAL_PROPS are part of the config; check them first."
    die 1 "formatting the Kafka storage in $LOG_DIRS failed (output above, also in $LOGS/storage-format.log).
  If the data dir is damaged and you do not need its topics: $PROG reset   (deletes $DATA_DIR)"
  fi
}

# ---------------------------------------------------------------------------------------------
# Commands.

wait_until_ready() {  # pid log_offset -> 0 when it answers, 1 if the process died, 2 on timeout
  # KAFKA_START_TIMEOUT counts seconds *without progress*: a broker that is still loading a
  # large data dir writes to server.log ("... completed in ..."), and each write moves the
  # deadline. KAFKA_START_MAX bounds the whole wait whatever the log says.
  local pid=$1 off=$2 deadline=$((SECONDS + KAFKA_START_TIMEOUT)) hard=$((SECONDS + KAFKA_START_MAX))
  local size last=-1 noted=0
  while (( SECONDS < deadline && SECONDS < hard )); do
    proc_alive "$pid" || return 1
    if log_says_started "$off" && kafka_answers; then return 0; fi
    size=$(stat -c %s "$SERVER_LOG" 2>/dev/null || echo 0)
    if (( size != last )); then
      last=$size
      deadline=$((SECONDS + KAFKA_START_TIMEOUT))
    fi
    if (( SECONDS - noted >= 30 )); then
      noted=$SECONDS
      (( noted > 30 )) && say "still starting (the broker is loading its logs: $(progress_line "$off")); waiting while it makes progress ..."
    fi
    sleep 0.3
  done
  return 2
}

progress_line() {  # byte offset -> the last "n/m completed" the log loader printed, if any
  tail -c +$(( $1 + 1 )) "$SERVER_LOG" 2>/dev/null | grep -o '[0-9]*/[0-9]* completed' | tail -n 1 || true
}

stop_pid() {  # pid -> SIGTERM, wait, SIGKILL
  local pid=$1 t0=$SECONDS deadline
  kill -TERM "$pid" 2>/dev/null || true
  deadline=$((SECONDS + KAFKA_STOP_TIMEOUT))
  while proc_alive "$pid" && (( SECONDS < deadline )); do sleep 0.2; done
  if proc_alive "$pid"; then
    warn "broker (pid $pid) did not exit within ${KAFKA_STOP_TIMEOUT} s of SIGTERM; sending SIGKILL (it will recover its logs on next start)."
    kill -KILL "$pid" 2>/dev/null || true
    deadline=$((SECONDS + 10))
    while proc_alive "$pid" && (( SECONDS < deadline )); do sleep 0.2; done
    proc_alive "$pid" && die 1 "broker (pid $pid) is still alive after SIGKILL; check 'ps -o pid,stat,cmd -p $pid'."
  fi
  rm -f "$PIDFILE"
  STOP_SECONDS=$((SECONDS - t0))
}

cmd_start() {
  bootstrap_note
  lib_complete || cmd_fetch
  need_java
  take_lock
  local pid
  if pid=$(broker_pid); then
    if kafka_answers; then
      say "already running on $HOST:$KAFKA_PORT (pid $pid)"
      return 0
    fi
    say "broker process $pid exists but does not answer on $HOST:$KAFKA_PORT yet; waiting up to ${KAFKA_START_TIMEOUT} s ..."
    if wait_until_ready "$pid" 0; then say "running on $HOST:$KAFKA_PORT (pid $pid)"; return 0; fi
    show_last_logs 40
    die 1 "broker process $pid does not answer on $HOST:$KAFKA_PORT. Restart it: $PROG stop && $PROG start"
  fi

  local what alt
  if port_open "$KAFKA_PORT"; then
    what=$(port_owner "$KAFKA_PORT")
    alt=$KAFKA_PORT
    while :; do  # suggest a port whose default controller port (+1000) is free as well
      alt=$(free_port_after "$alt")
      [[ "$alt" =~ ^[0-9]+$ ]] || break
      (( alt + 1000 <= 65535 )) && ! port_open $((alt + 1000)) && break
    done
    die 2 "port $KAFKA_PORT on $HOST is already in use${what:+ by $what}, so the local Kafka was not started.
  - If that is a Kafka cluster you want to use: export CONSENTINEL_BOOTSTRAP_SERVERS=$HOST:$KAFKA_PORT and skip this script.
  - Otherwise run the local broker on a free port, e.g.:  KAFKA_PORT=$alt $PROG start
    (and use KAFKA_PORT=$alt for every other $PROG command and CONSENTINEL_BOOTSTRAP_SERVERS=$HOST:$alt for consentinel)."
  fi
  if port_open "$KAFKA_CONTROLLER_PORT"; then
    what=$(port_owner "$KAFKA_CONTROLLER_PORT")
    alt=$(free_port_after "$KAFKA_CONTROLLER_PORT" "$KAFKA_PORT")
    die 2 "the KRaft controller port $KAFKA_CONTROLLER_PORT on $HOST (default: KAFKA_PORT + 1000) is already in use${what:+ by $what}, so the local Kafka was not started.
  Choose another controller port, e.g.:  KAFKA_PORT=$KAFKA_PORT KAFKA_CONTROLLER_PORT=$alt $PROG start"
  fi

  local t0=$SECONDS
  write_config
  format_storage

  local off=0
  [[ -f "$SERVER_LOG" ]] && off=$(stat -c %s "$SERVER_LOG")
  : >"$STDOUT_LOG"
  # setsid: own session, so Ctrl-C / the caller's process group ending does not take the broker down.
  java_args "$KAFKA_HEAP_OPTS"
  JAVA_ARGS+=("-Xlog:gc*:file=$LOGS/gc.log:time,tags:filecount=3,filesize=10M")
  # 8>&- 9>&-: the broker must not inherit (and so hold forever) the fetch/start lock fds.
  setsid nohup java "${JAVA_ARGS[@]}" kafka.Kafka "$PROPS" </dev/null >>"$STDOUT_LOG" 2>&1 8>&- 9>&- &
  pid=$!
  echo "$pid" >"$PIDFILE"
  say "starting Kafka $KAFKA_VERSION on $HOST:$KAFKA_PORT (controller $HOST:$KAFKA_CONTROLLER_PORT, pid $pid, log $SERVER_LOG) ..."

  if [[ -n "${NO_WAIT:-}" ]]; then
    sleep 1
    proc_alive "$pid" || { rm -f "$PIDFILE"; show_last_logs 25 "$off"; die 1 "the broker exited at once (logs above)."; }
    say "launched node $KAFKA_NODE_ID (pid $pid); not waiting for it to answer"
    return 0
  fi
  local rc=0
  wait_until_ready "$pid" "$off" || rc=$?
  case $rc in
    0)
      say "Kafka $KAFKA_VERSION is up on $HOST:$KAFKA_PORT (pid $pid) after $((SECONDS - t0)) s. Bootstrap servers: $HOST:$KAFKA_PORT"
      ;;
    1)
      rm -f "$PIDFILE"
      show_last_logs 25 "$off"
      die 1 "the broker exited during startup (logs above; full log: $SERVER_LOG).
  Data that cannot be recovered can be wiped with: $PROG reset   (deletes $DATA_DIR)"
      ;;
    *)
      show_last_logs 25 "$off"
      warn "broker did not answer on $HOST:$KAFKA_PORT (no progress for ${KAFKA_START_TIMEOUT} s, or ${KAFKA_START_MAX} s in all); stopping it (pid $pid) so nothing half-started is left behind."
      stop_pid "$pid" || true
      die 1 "Kafka did not start: no progress for ${KAFKA_START_TIMEOUT} s, or more than ${KAFKA_START_MAX} s in all (logs above; full log: $SERVER_LOG).
  On a slow or busy machine retry with longer waits: KAFKA_START_TIMEOUT=180 KAFKA_START_MAX=1800 $PROG start"
      ;;
  esac
}

cmd_stop() {
  take_lock
  local pid
  if ! pid=$(broker_pid); then
    rm -f "$PIDFILE"
    orphan_note && return 1
    if port_open "$KAFKA_PORT"; then
      local what; what=$(port_owner "$KAFKA_PORT")
      say "the local broker for $DATA_DIR is not running (nothing to stop), but port $KAFKA_PORT is in use by something else${what:+, $what}. Not touching it."
    else
      say "not running on $HOST:$KAFKA_PORT (nothing to stop)"
    fi
    return 0
  fi
  say "stopping Kafka on $HOST:$KAFKA_PORT (pid $pid) ..."
  stop_pid "$pid"
  local p deadline=$((SECONDS + 10))
  for p in "$KAFKA_PORT" "$KAFKA_CONTROLLER_PORT"; do
    while port_open "$p" && (( SECONDS < deadline )); do sleep 0.2; done
    if port_open "$p"; then
      local what; what=$(port_owner "$p")
      die 1 "broker pid $pid is gone but port $p on $HOST still answers${what:+ ($what)}; something else holds it."
    fi
  done
  say "stopped (pid $pid) in ${STOP_SECONDS} s; ports $KAFKA_PORT and $KAFKA_CONTROLLER_PORT are free."
}

cmd_kill() {  # SIGKILL, as a crash would: only the pid this script started for this data dir
  take_lock
  local pid
  if ! pid=$(broker_pid); then
    rm -f "$PIDFILE"
    orphan_note && return 1
    say "not running on $HOST:$KAFKA_PORT (nothing to kill)"
    return 0
  fi
  kill -KILL "$pid" 2>/dev/null || true
  local deadline=$((SECONDS + 10))
  while proc_alive "$pid" && (( SECONDS < deadline )); do sleep 0.1; done
  proc_alive "$pid" && die 1 "broker (pid $pid) is still alive after SIGKILL; check 'ps -o pid,stat,cmd -p $pid'."
  rm -f "$PIDFILE"
  say "killed node $KAFKA_NODE_ID on $HOST:$KAFKA_PORT (pid $pid, SIGKILL)"
}

cmd_status() {
  local pid
  if pid=$(broker_pid); then
    if kafka_answers; then
      say "running on $HOST:$KAFKA_PORT (pid $pid), Kafka $KAFKA_VERSION, controller $HOST:$KAFKA_CONTROLLER_PORT"
      say "  data $LOG_DIRS"
      say "  log  $SERVER_LOG"
      return 0
    fi
    say "broker process $pid exists but does not answer on $HOST:$KAFKA_PORT (still starting, or stuck). See: $PROG logs"
    return 1
  fi
  if port_open "$KAFKA_PORT"; then
    local what; what=$(port_owner "$KAFKA_PORT")
    say "not running (no local broker for $DATA_DIR); port $KAFKA_PORT is in use by something else${what:+, $what}."
  else
    say "not running on $HOST:$KAFKA_PORT. Start it with: $PROG start"
  fi
  return 3
}

cmd_wait() {
  local deadline=$((SECONDS + KAFKA_START_TIMEOUT)) t0=$SECONDS
  until kafka_answers; do
    if (( SECONDS >= deadline )); then
      cmd_status >&2 || true
      die 1 "no Kafka answered on $HOST:$KAFKA_PORT within ${KAFKA_START_TIMEOUT} s. Start one with: $PROG start"
    fi
    sleep 0.3
  done
  say "Kafka answers on $HOST:$KAFKA_PORT (waited $((SECONDS - t0)) s)"
}

cmd_logs() {
  local follow="" n=100 a
  for a in "$@"; do
    case $a in
      -f|--follow) follow=1 ;;
      *[!0-9]*|"") die 2 "usage: $PROG logs [-f] [LINES]" ;;
      *) n=$a ;;
    esac
  done
  [[ -f "$SERVER_LOG" ]] || die 1 "no log yet at $SERVER_LOG (has the broker on port $KAFKA_PORT ever been started?)"
  if [[ -n "$follow" ]]; then exec tail -n "$n" -F "$SERVER_LOG"; fi
  tail -n "$n" "$SERVER_LOG"
}

cmd_reset() {
  local existed=""
  [[ -d "$DATA_DIR" ]] && existed=1
  cmd_stop
  case $DATA_DIR in
    */kafka-data-[0-9]*) ;;
    *) die 1 "refusing to delete unexpected path '$DATA_DIR'" ;;
  esac
  if [[ -n "$existed" ]]; then
    rm -rf "$DATA_DIR"
    say "deleted $DATA_DIR (topics, offsets, logs, cluster id). The next '$PROG start' formats a fresh cluster."
  else
    rm -rf "$DATA_DIR"  # only the lock file that 'stop' just created
    say "nothing to delete: $DATA_DIR did not exist."
  fi
}

usage() {
  sed -n '2,31p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

main() {
  local cmd=${1:-}
  [[ $# -gt 0 ]] && shift
  case $cmd in
    fetch)  cmd_fetch ;;
    start)  cmd_start ;;
    stop)   cmd_stop ;;
    status) cmd_status ;;
    wait)   cmd_wait ;;
    logs)   cmd_logs "$@" ;;
    reset)  cmd_reset ;;
    kill)   cmd_kill ;;
    launch) NO_WAIT=1 cmd_start ;;
    cluster) exec bash "$SCRIPT_DIR/kafka-cluster.sh" "$@" ;;
    -h|--help|help) usage ;;
    "") usage >&2; exit 2 ;;
    *) warn "unknown command '$cmd'"; usage >&2; exit 2 ;;
  esac
}

main "$@"
