# Sourced by the checks in .ci/checks/: helpers for starting processes on loopback.

# A free TCP port on 127.0.0.1, below the kernel's ephemeral range: a port the system picked
# for us (port 0) could be handed to some client's outgoing connection (a gateway's own
# Postgres pool) before the process we start binds it.
free_port() {
  python3 -c '
import random, socket
low = int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0])
for _ in range(200):
    port = random.randrange(20000, low)
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", port))
    except OSError:
        continue
    finally:
        s.close()
    print(port)
    break
else:
    raise SystemExit("no free port")
'
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

# For checks that run gateways on Postgres: builds the binary ($BIN), makes a work folder ($TMP),
# a database of its own ($DATABASE_URL, named after $1) and a master key, and on exit stops every
# pid in PIDS, drops the database and removes the folder. `fail MESSAGE` prints the logs and exits.
postgres_gateways() {
  cargo build --quiet --bin crisp-gateway
  BIN=$PWD/target/debug/crisp-gateway
  TMP=$(mktemp -d)
  DB=gw_${1}_$$
  PIDS=()
  trap postgres_gateways_cleanup EXIT
  psql "$TEST_DATABASE_URL" -qc "create database $DB" >/dev/null
  export DATABASE_URL="${TEST_DATABASE_URL%/*}/$DB"
  CRISP_GATEWAY_MASTER_KEY=$("$BIN" master-key generate)
  export CRISP_GATEWAY_MASTER_KEY
}
postgres_gateways_cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  psql "$TEST_DATABASE_URL" -qc "drop database if exists $DB with (force)" >/dev/null 2>&1 || true
  rm -rf "$TMP"
}
fail() { echo "FAIL: $*" >&2; tail -n 20 "$TMP"/*.log >&2 || true; exit 1; }

# Starts `crisp-gateway sandbox` (extra options in "$@") on a free port as the gateways' Crisp:
# sets SANDBOX (its address) and exports CRISP_GATEWAY_UPSTREAM. Needs postgres_gateways first.
start_sandbox() {
  SANDBOX_PORT=$(free_port)
  SANDBOX="http://127.0.0.1:$SANDBOX_PORT"
  "$BIN" sandbox --listen "127.0.0.1:$SANDBOX_PORT" "$@" >"$TMP/sandbox.log" 2>&1 &
  PIDS+=($!)
  wait_for "$SANDBOX/v1" "${PIDS[-1]}" || fail "the sandbox did not start"
  export CRISP_GATEWAY_UPSTREAM="$SANDBOX/v1"
}

# Migrates, makes workspace `acme` and its default account `main` on the sandbox (extra
# `account add` options in "$@").
seed_acme() {
  "$BIN" migrate 2>/dev/null
  "$BIN" workspace create acme 2>/dev/null
  CRISP_KEY=sandbox-key "$BIN" account add --workspace acme --label main --identifier sandbox-id \
    --website-id 8c842203-7ed8-4e29-a608-7cf78a7d2fcc --default "$@" >/dev/null 2>&1
}

# Starts N `crisp-gateway serve` replicas on free ports, each logging to $TMP/gateway-N.log, and
# waits until each is ready: their ports in PORTS, their pids appended to PIDS.
start_replicas() {
  local replica port
  PORTS=()
  for replica in $(seq 1 "$1"); do
    port=$(free_port)
    # Replicas share one machine here: their admin listeners stay off (admin-api.sh tests it).
    CRISP_GATEWAY_LISTEN="127.0.0.1:$port" CRISP_GATEWAY_ADMIN_LISTEN= \
      "$BIN" serve >"$TMP/gateway-$replica.log" 2>&1 &
    PIDS+=($!)
    wait_for "http://127.0.0.1:$port/readyz" "${PIDS[-1]}" || fail "replica $replica did not start"
    PORTS+=("$port")
  done
}
