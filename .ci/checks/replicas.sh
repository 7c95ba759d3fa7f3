#!/usr/bin/env bash
# Two `crisp-gateway serve` processes on one Postgres, as behind a load balancer (the topology of
# docker-compose.yml, with plain processes): a key made with the CLI works on both, an idempotent
# write sent to one is replayed by the other without a second Crisp call, and a key revoked with
# the CLI is refused by both within a second. Crisp is `crisp-gateway sandbox`.
set -euo pipefail
cd "$(dirname "$0")/../.."
source .ci/postgres.sh
source .ci/lib.sh
ensure_postgres

postgres_gateways replicas

start_sandbox
seed_acme

start_replicas 2

# A key made after both started is accepted by both.
KEY=$("$BIN" key create --workspace acme --name replicas 2>/dev/null)
KEY_ID=$(echo "$KEY" | cut -d_ -f3)
call() { # port action body [extra curl args…] → prints "status body"
  local port=$1 action=$2 body=$3; shift 3
  curl -s -o "$TMP/body" -w '%{http_code}' -X POST "http://127.0.0.1:$port/api/crisp/$action" \
    -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' "$@" -d "$body"
}
for port in "${PORTS[@]}"; do
  status=$(call "$port" list/conversations '{}')
  [ "$status" = 200 ] || fail "replica on $port answered $status: $(cat "$TMP/body")"
done
echo "ok: a new key works on both replicas"

# An idempotent write through replica 1, repeated through replica 2: one conversation.
status=$(call "${PORTS[0]}" create/new/conversation '{}' -H 'Idempotency-Key: replicas-1')
[ "$status" = 200 ] || fail "first write answered $status: $(cat "$TMP/body")"
first=$(cat "$TMP/body")
status=$(call "${PORTS[1]}" create/new/conversation '{}' -H 'Idempotency-Key: replicas-1' -D "$TMP/headers")
[ "$status" = 200 ] || fail "repeat answered $status"
[ "$(cat "$TMP/body")" = "$first" ] || fail "the repeat's answer differs: $(cat "$TMP/body") vs $first"
grep -qi '^idempotent-replayed: true' "$TMP/headers" || fail "the repeat was not marked as replayed"
status=$(call "${PORTS[1]}" list/conversations '{}')
count=$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["result"]))' "$TMP/body") || fail "listing answered $status: $(cat "$TMP/body")"
[ "$count" = 1 ] || fail "Crisp holds $count conversations after one idempotent write sent twice"
echo "ok: an idempotent write was replayed across replicas ($first)"

# Revoked with the CLI: refused by both within a second.
"$BIN" key revoke "$KEY_ID" 2>/dev/null
start=$(date +%s%N)
for port in "${PORTS[@]}"; do
  while :; do
    status=$(call "$port" list/conversations '{}')
    [ "$status" = 401 ] && break
    elapsed=$(( ($(date +%s%N) - start) / 1000000 ))
    [ "$elapsed" -lt 1000 ] || fail "replica on $port still accepts a revoked key after ${elapsed} ms"
    sleep 0.02
  done
done
elapsed=$(( ($(date +%s%N) - start) / 1000000 ))
echo "ok: the revoked key was refused by both replicas within ${elapsed} ms"
echo "replicas: 3 passed, 0 failed"
