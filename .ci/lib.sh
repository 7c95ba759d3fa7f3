# Sourced by the checks in .ci/checks/: helpers for starting processes on loopback.

# A free TCP port on 127.0.0.1.
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# Polls until the URL answers (any HTTP status), for at most ~20 s; fails if the process died.
wait_for() {
  local url=$1 pid=$2
  for _ in $(seq 1 200); do
    if curl -s -o /dev/null "$url"; then return 0; fi
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "process $pid exited before $url answered" >&2
      return 1
    fi
    sleep 0.1
  done
  echo "timed out waiting for $url" >&2
  return 1
}

# What a check with several gateway processes needs: the built binary BIN, a scratch folder
# TMP, the pids PIDS to stop and a database name DB (`$1` and this shell's pid), all cleaned up
# when the script exits; and `fail`, which shows the end of every log.
replica_scratch() {
  cargo build --quiet --bin crisp-gateway
  BIN=$PWD/target/debug/crisp-gateway
  TMP=$(mktemp -d)
  DB=$1_$$
  PIDS=()
  trap replica_cleanup EXIT
}
replica_cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  psql "$TEST_DATABASE_URL" -qc "drop database if exists $DB with (force)" >/dev/null 2>&1 || true
  rm -rf "$TMP"
}
fail() { echo "FAIL: $*" >&2; tail -n 20 "$TMP"/*.log >&2 || true; exit 1; }

# A fresh Postgres database `$1` for gateway replicas, with a master key, `crisp-gateway sandbox`
# standing in for Crisp, and a workspace `acme` whose default account is the sandbox's. Exports
# DATABASE_URL, CRISP_GATEWAY_MASTER_KEY and CRISP_GATEWAY_UPSTREAM. Uses the caller's BIN, TMP,
# PIDS (the sandbox's pid is added, for the caller's cleanup) and fail.
gateway_on_sandbox() {
  local db=$1 port
  psql "$TEST_DATABASE_URL" -qc "create database $db" >/dev/null
  export DATABASE_URL="${TEST_DATABASE_URL%/*}/$db"
  CRISP_GATEWAY_MASTER_KEY=$("$BIN" master-key generate)
  export CRISP_GATEWAY_MASTER_KEY
  port=$(free_port)
  "$BIN" sandbox --listen "127.0.0.1:$port" >"$TMP/sandbox.log" 2>&1 &
  PIDS+=($!)
  wait_for "http://127.0.0.1:$port/v1" "${PIDS[-1]}" || fail "the sandbox did not start"
  export CRISP_GATEWAY_UPSTREAM="http://127.0.0.1:$port/v1"
  "$BIN" migrate 2>/dev/null
  "$BIN" workspace create acme 2>/dev/null
  CRISP_KEY=sandbox-key "$BIN" account add --workspace acme --label main --identifier sandbox-id \
    --website-id 8c842203-7ed8-4e29-a608-7cf78a7d2fcc --default >/dev/null 2>&1
}

# Starts `$1` replicas of `crisp-gateway serve`, each on a free port, and waits until each is
# ready; their ports go in PORTS, their pids in PIDS, their logs in $TMP/gateway-N.log.
start_replicas() {
  local count=$1 replica port
  PORTS=()
  for replica in $(seq 1 "$count"); do
    port=$(free_port)
    # Replicas share one machine here: their admin listeners stay off (admin-api.sh tests it).
    CRISP_GATEWAY_LISTEN="127.0.0.1:$port" CRISP_GATEWAY_ADMIN_LISTEN= \
      "$BIN" serve >"$TMP/gateway-$replica.log" 2>&1 &
    PIDS+=($!)
    wait_for "http://127.0.0.1:$port/readyz" "${PIDS[-1]}" || fail "replica $replica did not start"
    PORTS+=("$port")
  done
}
