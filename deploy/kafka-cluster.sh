#!/usr/bin/env bash
# A local Apache Kafka cluster of 3 KRaft nodes (each broker + controller in one JVM) on
# 127.0.0.1, for fault tests: replication factor 3 by default, min.insync.replicas 2.
# Run it through deploy/kafka.sh:
#
#   deploy/kafka.sh cluster start       start every node not running, wait until all answer
#   deploy/kafka.sh cluster stop        SIGTERM every node (in parallel), SIGKILL after KAFKA_STOP_TIMEOUT
#   deploy/kafka.sh cluster status      one line per node; exit 0 all up, 1 some up, 3 none
#   deploy/kafka.sh cluster kill N      SIGKILL node N (1-3), as a crash would
#   deploy/kafka.sh cluster restart N   start node N again (after kill), wait until it answers
#   deploy/kafka.sh cluster logs N [LINES]
#   deploy/kafka.sh cluster bootstrap   print the bootstrap servers (host:port,host:port,...)
#   deploy/kafka.sh cluster reset       stop, then delete the cluster's data
#
# Environment (all optional):
#   KAFKA_CLUSTER_PORT   client port of node 1 (default 19092); node N listens on +N-1 and its
#                        controller on that + 1000 (19092-19094, 20092-20094)
#   KAFKA_CLUSTER_HEAP   heap of each node (default "-Xms128m -Xmx384m": three fit beside the rest)
#   CONSENTINEL_HOME     data under $CONSENTINEL_HOME/kafka-cluster-<port>/kafka-data-<node port>/
#   KAFKA_START_TIMEOUT  seconds to wait for the nodes (default 120 here)
#
# It never touches the single-node broker (deploy/kafka.sh start, port 9092 by default), and it
# stops or kills only the JVMs it started, by the pid in each node's pid file.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
KAFKA_SH="$SCRIPT_DIR/kafka.sh"
PROG="deploy/kafka.sh cluster"
HOST=127.0.0.1
NODES=3

BASE="${KAFKA_CLUSTER_PORT:-19092}"
HEAP="${KAFKA_CLUSTER_HEAP:--Xms128m -Xmx384m}"
CONSENTINEL_HOME=$(realpath -m -- "${CONSENTINEL_HOME:-$HOME/.cache/consentinel}")
export KAFKA_START_TIMEOUT="${KAFKA_START_TIMEOUT:-120}"
CLUSTER_DIR="$CONSENTINEL_HOME/kafka-cluster-$BASE"

say() { printf 'kafka cluster: %s\n' "$*"; }
die() { local rc=$1; shift; printf 'kafka cluster: ERROR: %s\n' "$*" >&2; exit "$rc"; }

[[ "$BASE" =~ ^[0-9]+$ ]] && (( BASE >= 1024 && BASE + NODES + 1000 <= 65535 )) ||
  die 2 "KAFKA_CLUSTER_PORT='$BASE' must be a port from 1024 to $((65535 - 1000 - NODES))."
single=${KAFKA_PORT:-9092}
if [[ "$single" =~ ^[0-9]+$ ]] && (( single >= BASE && single < BASE + NODES )); then
  die 2 "KAFKA_CLUSTER_PORT=$BASE overlaps the single-node broker's KAFKA_PORT=$single; choose another base port."
fi

port_of() { echo $((BASE + $1 - 1)); }
cport_of() { echo $((BASE + $1 - 1 + 1000)); }

voters() {
  local n out=""
  for n in $(seq 1 $NODES); do out+="${out:+,}$n@$HOST:$(cport_of "$n")"; done
  echo "$out"
}

bootstrap() {
  local n out=""
  for n in $(seq 1 $NODES); do out+="${out:+,}$HOST:$(port_of "$n")"; done
  echo "$out"
}

cluster_id() {  # made once per cluster dir, shared by every node's storage
  mkdir -p "$CLUSTER_DIR"
  if [[ ! -s "$CLUSTER_DIR/cluster.id" ]]; then
    local id
    while :; do
      id=$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')
      [[ ${#id} -eq 22 && "$id" != -* ]] && break
    done
    echo "$id" >"$CLUSTER_DIR/cluster.id"
  fi
  tr -d ' \n' <"$CLUSTER_DIR/cluster.id"
}

node_index() {  # validates N
  [[ "${1:-}" =~ ^[1-9]$ ]] && (( $1 <= NODES )) || die 2 "usage: $PROG $2 N   (N = 1 to $NODES)"
}

node() {  # N kafka.sh-command [args]: run deploy/kafka.sh for node N of this cluster
  local n=$1; shift
  env -u CONSENTINEL_BOOTSTRAP_SERVERS \
    KAFKA_PORT="$(port_of "$n")" \
    KAFKA_CONTROLLER_PORT="$(cport_of "$n")" \
    KAFKA_DATA_DIR="$CLUSTER_DIR/kafka-data-$(port_of "$n")" \
    KAFKA_NODE_ID="$n" \
    KAFKA_QUORUM_VOTERS="$(voters)" \
    KAFKA_CLUSTER_ID="$(cluster_id)" \
    KAFKA_REPLICATION=3 \
    KAFKA_HEAP_OPTS="$HEAP" \
    CONSENTINEL_HOME="$CONSENTINEL_HOME" \
    bash "$KAFKA_SH" "$@"
}

cmd_start() {
  local n t0=$SECONDS
  bash "$KAFKA_SH" fetch >/dev/null
  # A quorum of 3 controllers elects a leader only once 2 run: launch all, then wait for each.
  for n in $(seq 1 $NODES); do
    if node "$n" status >/dev/null 2>&1; then
      say "node $n already running on $HOST:$(port_of "$n")"
    else
      node "$n" launch
    fi
  done
  for n in $(seq 1 $NODES); do
    node "$n" wait >/dev/null || { node "$n" logs 30 >&2 || true; die 1 "node $n did not answer within ${KAFKA_START_TIMEOUT} s (log above)."; }
  done
  say "up after $((SECONDS - t0)) s: bootstrap servers $(bootstrap) (replication factor 3, min.insync.replicas 2)"
}

cmd_stop() {
  local n pids=() rc=0
  for n in $(seq 1 $NODES); do
    node "$n" stop &
    pids+=($!)
  done
  for n in "${pids[@]}"; do wait "$n" || rc=1; done
  return $rc
}

cmd_status() {
  local n up=0 rc
  for n in $(seq 1 $NODES); do
    rc=0
    node "$n" status >/dev/null 2>&1 || rc=$?
    if (( rc == 0 )); then
      up=$((up + 1)); say "node $n: running on $HOST:$(port_of "$n")"
    elif (( rc == 1 )); then
      say "node $n: process up, not answering on $HOST:$(port_of "$n")"
    else
      say "node $n: not running ($HOST:$(port_of "$n"))"
    fi
  done
  (( up == NODES )) && return 0
  (( up > 0 )) && return 1
  return 3
}

cmd_reset() {
  cmd_stop
  case $CLUSTER_DIR in
    */kafka-cluster-[0-9]*) rm -rf "$CLUSTER_DIR"; say "deleted $CLUSTER_DIR" ;;
    *) die 1 "refusing to delete unexpected path '$CLUSTER_DIR'" ;;
  esac
}

usage() { sed -n '2,24p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

main() {
  local cmd=${1:-}
  [[ $# -gt 0 ]] && shift
  case $cmd in
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    kill) node_index "${1:-}" kill; node "$1" kill ;;
    restart) node_index "${1:-}" restart; node "$1" start ;;
    logs) node_index "${1:-}" logs; local n=$1; shift; node "$n" logs "$@" ;;
    bootstrap) bootstrap ;;
    reset) cmd_reset ;;
    -h|--help|help) usage ;;
    "") usage >&2; exit 2 ;;
    *) printf 'kafka cluster: unknown command %s\n' "$cmd" >&2; usage >&2; exit 2 ;;
  esac
}

main "$@"
