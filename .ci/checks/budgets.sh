#!/usr/bin/env bash
# One Crisp account's budget held across three `crisp-gateway serve` processes on one Postgres:
# an account set to 20 calls/s (`account add --rate 20/s`), 30 s of load spread over the three
# (more than the budget), and the sandbox counting the calls it gets per 100 ms. Every 1-second
# window after the first must see at most 21 calls; one replica is killed (SIGKILL, no goodbye)
# half-way, and from 2 s after the kill the two left must use the whole budget (its seconds
# average >= 19 calls, no sliding second below 17). Load: Python's standard library, threads.
set -euo pipefail
cd "$(dirname "$0")/../.."
source .ci/postgres.sh
source .ci/lib.sh
ensure_postgres
command -v python3 >/dev/null || { apt-get update -qq && apt-get install -y -qq python3 >/dev/null; }

postgres_gateways budgets
# A burst of one call: the budget is then exactly 20 calls in any second.
export CRISP_GATEWAY_ACCOUNT_BURST=1
# Warnings only: the access lines of 600 calls would bury a failure.
export RUST_LOG=warn

start_sandbox --count-calls
seed_acme --rate 20/s
"$BIN" account list 2>/dev/null | grep -q ' 20/s ' || fail "account list does not show the rate 20/s"
KEY=$("$BIN" key create --workspace acme --name budgets 2>/dev/null)

start_replicas 3
# Three replicas running, as behind a load balancer: each has renewed its heartbeat lease and
# counts the others (leases last 1 s, renewed every 250 ms) before the load arrives.
sleep 1.5
echo "ok: three replicas on one database, account budget 20/s"

python3 .ci/checks/budgets_load.py "$SANDBOX" "$KEY" 30 "$TMP/killed" "${PORTS[@]}" &
LOAD=$!
sleep 15
kill -9 "${PIDS[3]}"
wait "${PIDS[3]}" 2>/dev/null || true
python3 -c 'import time; print(int(time.time() * 1000))' >"$TMP/killed"
echo "killed replica 3 at 15 s"
wait "$LOAD" || fail "the budget was not held across the replicas (see above)"
echo "budgets: 2 passed, 0 failed"
