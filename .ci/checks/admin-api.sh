#!/usr/bin/env bash
# The admin API end to end: two `crisp-gateway serve` replicas on one Postgres, each with its own
# admin listener, and `crisp-gateway sandbox` as Crisp. Only the admin token comes from the CLI;
# everything else goes through HTTP: create a workspace, a key and an account (sandbox
# credentials) through replica 1's admin API, see the key work on both main listeners, revoke it
# through replica 2's admin API, and see it refused by every replica within a second. The admin
# OpenAPI document is served as committed.
set -euo pipefail
cd "$(dirname "$0")/../.."
source .ci/postgres.sh
source .ci/lib.sh
ensure_postgres

postgres_gateways admin_api
start_sandbox

"$BIN" migrate 2>/dev/null
TOKEN=$("$BIN" admin-token create --name ci 2>/dev/null)
[[ "$TOKEN" == sk_admin_* ]] || fail "admin-token create printed no token"

PORTS=()
ADMIN_PORTS=()
for replica in 1 2; do
  port=$(free_port)
  admin_port=$(free_port)
  CRISP_GATEWAY_LISTEN="127.0.0.1:$port" CRISP_GATEWAY_ADMIN_LISTEN="127.0.0.1:$admin_port" \
    "$BIN" serve >"$TMP/gateway-$replica.log" 2>&1 &
  PIDS+=($!)
  wait_for "http://127.0.0.1:$port/readyz" "${PIDS[-1]}" || fail "replica $replica did not start"
  wait_for "http://127.0.0.1:$admin_port/admin/" "${PIDS[-1]}" || fail "replica $replica's admin listener did not start"
  PORTS+=("$port")
  ADMIN_PORTS+=("$admin_port")
done

admin() { # replica method path [body] → prints the status; the body is in $TMP/body
  local replica=$1 method=$2 path=$3 body=${4:-}
  local args=(-s -o "$TMP/body" -w '%{http_code}' -X "$method" -H "Authorization: Bearer $TOKEN")
  [ -n "$body" ] && args+=(-H 'Content-Type: application/json' -d "$body")
  curl "${args[@]}" "http://127.0.0.1:${ADMIN_PORTS[$replica]}$path"
}
field() { python3 -c 'import json,sys; v=json.load(open(sys.argv[1])); [v:=v[k] for k in sys.argv[2:]]; print(v)' "$TMP/body" "$@"; }

status=$(curl -s -o "$TMP/body" -w '%{http_code}' "http://127.0.0.1:${ADMIN_PORTS[0]}/admin/v1/workspaces")
[ "$status" = 401 ] || fail "the admin API answered $status without a token"
status=$(admin 0 POST /admin/v1/workspaces '{"name":"acme"}')
[ "$status" = 201 ] || fail "workspace create answered $status: $(cat "$TMP/body")"
status=$(admin 0 POST /admin/v1/accounts '{"workspace":"acme","label":"main","identifier":"sandbox-id","crisp_key":"sandbox-key","website_id":"8c842203-7ed8-4e29-a608-7cf78a7d2fcc","default":true}')
[ "$status" = 201 ] || fail "account add answered $status: $(cat "$TMP/body")"
grep -q sandbox-key "$TMP/body" && fail "the account's answer echoes the Crisp key"
status=$(admin 0 POST /admin/v1/accounts/main/test?workspace=acme)
[ "$status" = 200 ] && [ "$(field works)" = True ] || fail "the sandbox account does not test as working: $(cat "$TMP/body")"
status=$(curl -s -o "$TMP/body" -w '%{http_code}' -X POST -H "Authorization: Bearer $TOKEN" \
  -H 'Idempotency-Key: ci-key-1' -H 'Content-Type: application/json' \
  -d '{"workspace":"acme","name":"ci"}' "http://127.0.0.1:${ADMIN_PORTS[0]}/admin/v1/keys")
[ "$status" = 201 ] || fail "key create answered $status: $(cat "$TMP/body")"
KEY=$(field key)
KEY_ID=$(field id)
[[ "$KEY" == sk_live_* ]] || fail "key create returned no key"
# The same create through the other replica is a replay: the same key id, no secret.
status=$(curl -s -o "$TMP/body" -w '%{http_code}' -X POST -H "Authorization: Bearer $TOKEN" \
  -H 'Idempotency-Key: ci-key-1' -H 'Content-Type: application/json' \
  -d '{"workspace":"acme","name":"ci"}' "http://127.0.0.1:${ADMIN_PORTS[1]}/admin/v1/keys")
[ "$status" = 201 ] && [ "$(field id)" = "$KEY_ID" ] && [ "$(field key)" = None ] \
  || fail "the replayed create answered $status: $(cat "$TMP/body")"
echo "ok: a workspace, an account and a key made through the admin API (the replayed create shows no secret)"

call() { # port → prints the status of a read with the new key
  curl -s -o "$TMP/call" -w '%{http_code}' -X POST "http://127.0.0.1:$1/api/crisp/list/conversations" \
    -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' -d '{}'
}
for port in "${PORTS[@]}"; do
  status=$(call "$port")
  [ "$status" = 200 ] || fail "replica on $port answered $status: $(cat "$TMP/call")"
done
echo "ok: the key works on both replicas' main listeners"

status=$(admin 1 POST "/admin/v1/keys/$KEY_ID/revoke")
[ "$status" = 200 ] || fail "revoke answered $status: $(cat "$TMP/body")"
start=$(date +%s%N)
for port in "${PORTS[@]}"; do
  while :; do
    [ "$(call "$port")" = 401 ] && break
    elapsed=$(( ($(date +%s%N) - start) / 1000000 ))
    [ "$elapsed" -lt 1000 ] || fail "replica on $port still accepts a revoked key after ${elapsed} ms"
    sleep 0.02
  done
done
elapsed=$(( ($(date +%s%N) - start) / 1000000 ))
echo "ok: revoked through the admin API, the key was refused by both replicas within ${elapsed} ms"

curl -s "http://127.0.0.1:${ADMIN_PORTS[0]}/admin/v1/openapi.json" -o "$TMP/admin-openapi.json"
cmp -s "$TMP/admin-openapi.json" openapi/crisp-gateway-admin.json || fail "the served admin OpenAPI differs from openapi/crisp-gateway-admin.json"
for log in "$TMP"/gateway-*.log; do
  if grep -qF -e "$TOKEN" -e "$KEY" -e sandbox-key "$log"; then fail "a secret appears in $log"; fi
done
echo "ok: the admin OpenAPI is served as committed; no admin token, key or Crisp key in the logs"
echo "admin-api: 4 passed, 0 failed"
