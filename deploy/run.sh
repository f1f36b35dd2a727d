#!/usr/bin/env bash
# `make run`: the whole monitor on this machine, with the demo feed.
# Starts the local broker (unless one already answers), creates the topics, publishes the
# demo purpose declarations, then runs the worker, the ingest server, the alert router, the
# certificate service and the console, and plays the demo traffic through the real
# connectors. The demo's leads carry TrustedForm certificates that no real issuer knows:
# the certificate service asks a DEMO ONLY stand-in issuer on the loopback
# (connectors/demo/issuer.py) with the demo key, unless CONSENTINEL_CERTIFICATE_ENDPOINT is
# set. Ctrl-C stops every
# process it started, the broker included when it started it.
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=.venv/bin
export CONSENTINEL_HOME="${CONSENTINEL_HOME:-$HOME/.cache/consentinel}"
export KAFKA_PORT="${KAFKA_PORT:-9092}"
export CONSENTINEL_BOOTSTRAP_SERVERS="${CONSENTINEL_BOOTSTRAP_SERVERS:-127.0.0.1:$KAFKA_PORT}"
export CONSENTINEL_CONNECTORS_FILE="${CONSENTINEL_CONNECTORS_FILE:-deploy/demo/connectors.yaml}"
export CONSENTINEL_GRACE_SECONDS="${CONSENTINEL_GRACE_SECONDS:-20}"
REGISTRY_FILE="${CONSENTINEL_REGISTRY_FILE:-deploy/demo/registry.yaml}"
LOGDIR="$CONSENTINEL_HOME/logs/run-$(date +%Y%m%d-%H%M%S)"
mkdir -p "$LOGDIR"

pids=()
names=()
started_broker=0

say() { printf 'consentinel: %s\n' "$*"; }

# A pid is signalled only while it is still a child of this script: a process that exited
# may have had its pid reused by something that is not ours.
ours() { [ "$(ps -o ppid= -p "$1" 2>/dev/null | tr -d ' ')" = "$$" ]; }

cleanup() {
  trap - EXIT INT TERM
  say "stopping ${#pids[@]} process(es)…"
  for pid in "${pids[@]}"; do ours "$pid" && kill -TERM "$pid" 2>/dev/null || true; done
  for _ in $(seq 1 30); do
    alive=0
    for pid in "${pids[@]}"; do ours "$pid" && alive=1; done
    [ $alive -eq 0 ] && break
    sleep 0.5
  done
  for pid in "${pids[@]}"; do ours "$pid" && kill -KILL "$pid" 2>/dev/null || true; done
  # the broker only if this run started it (kafka.sh stops the pid in its own pid file)
  if [ $started_broker -eq 1 ]; then bash deploy/kafka.sh stop || true; fi
  say "stopped. Logs are in $LOGDIR"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

start() {
  local name=$1; shift
  "$@" >"$LOGDIR/$name.log" 2>&1 &
  pids+=($!)
  names+=("$name")
  say "started $name (pid $!), log: $LOGDIR/$name.log"
}

if ! bash deploy/kafka.sh status >/dev/null 2>&1; then
  bash deploy/kafka.sh start
  started_broker=1
else
  say "using the broker already running on $CONSENTINEL_BOOTSTRAP_SERVERS (left running on exit)"
fi

$BIN/consentinel topics create
$BIN/consentinel registry apply "$REGISTRY_FILE"

if [ -z "${CONSENTINEL_CERTIFICATE_ENDPOINT:-}" ]; then
  ISSUER_PORT=$($BIN/python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  start issuer $BIN/python -m consentinel.connectors.demo.issuer --port "$ISSUER_PORT"
  export CONSENTINEL_CERTIFICATE_ENDPOINT="http://127.0.0.1:$ISSUER_PORT"
  export CONSENTINEL_CERTIFICATE_KEY="file:deploy/demo/secrets/trustedform-key"
  say "DEMO ONLY: lead certificates are verified by a stand-in issuer at $CONSENTINEL_CERTIFICATE_ENDPOINT"
fi

start worker  $BIN/consentinel worker
WORKER_AT=$(( ${#pids[@]} - 1 ))  # the issuer may have started first
start ingest  $BIN/consentinel ingest --config "$CONSENTINEL_CONNECTORS_FILE"
start router  $BIN/consentinel router
start certificates $BIN/consentinel certificates verify
start console $BIN/consentinel console

TOKEN=$($BIN/python -c 'from consentinel.streams.events.settings import Settings; print(Settings.from_env().token.reveal().decode())')
CONSOLE_PORT=$($BIN/python -c 'from consentinel.streams.events.settings import Settings; s=Settings.from_env(); print(s.console_port)')
METRICS_PORT=$($BIN/python -c 'from consentinel.streams.events.settings import Settings; s=Settings.from_env(); print(s.metrics_port)')
INGEST_PORT=$($BIN/python -c 'from consentinel.streams.events.settings import Settings; s=Settings.from_env(); print(s.ingest_port)')

# The demo's late-consent story is timed against the grace period: play it once the worker
# judges (it has read the purpose registry), not while it is still starting.
say "waiting for the worker to read the purpose registry…"
for _ in $(seq 1 240); do
  grep -q "purpose registry read" "$LOGDIR/worker.log" 2>/dev/null && break
  kill -0 "${pids[$WORKER_AT]}" 2>/dev/null || break
  sleep 0.5
done

start demo $BIN/consentinel demo --config "$CONSENTINEL_CONNECTORS_FILE" --ingest "http://127.0.0.1:$INGEST_PORT"

cat <<MSG

  consentinel is running.
    console   http://127.0.0.1:$CONSOLE_PORT/?token=$TOKEN
    metrics   http://127.0.0.1:$METRICS_PORT/metrics (worker)   http://127.0.0.1:$INGEST_PORT/metrics (ingest)
              http://127.0.0.1:$((METRICS_PORT + 2))/metrics (router)   http://127.0.0.1:$((METRICS_PORT + 3))/metrics (certificates)
    logs      $LOGDIR
  The demo feed is posting traffic now ($LOGDIR/demo.log lists the incidents to expect);
  they appear in the console within seconds, those waiting for consent after the grace
  period (${CONSENTINEL_GRACE_SECONDS} s).
  Ctrl-C stops everything this command started.

MSG

# Keep running until Ctrl-C; report any long-running process that dies.
while true; do
  set +e
  wait -n "${pids[@]}"
  rc=$?
  set -e
  for i in "${!pids[@]}"; do
    if ! kill -0 "${pids[$i]}" 2>/dev/null; then
      name=${names[$i]}
      if [ "$name" = demo ] && [ $rc -eq 0 ]; then
        say "the demo feed has posted all its traffic; the monitor keeps running (Ctrl-C to stop)"
      elif [ "$name" = demo ]; then
        say "the demo feed failed (status $rc); see $LOGDIR/demo.log — the monitor keeps running (Ctrl-C to stop)"
      else
        say "$name exited (status $rc); see $LOGDIR/$name.log — stopping the rest"
        exit 1
      fi
      unset 'pids[i]' 'names[i]'
      pids=("${pids[@]}"); names=("${names[@]}")
      break
    fi
  done
done
