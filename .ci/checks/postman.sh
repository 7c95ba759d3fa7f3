#!/usr/bin/env bash
# Runs the committed Postman collection with newman, as the README says, against the gateway on
# the stateful `crisp-gateway sandbox`: every request must answer 200 with `ok: true`. The
# requests chain their ids (a conversation made first, its `session_id` kept for the rest), so
# this proves the collection runs top to bottom on a fresh sandbox. The folder
# `Not run against the sandbox` holds the actions that cannot run there, each with its reason;
# they are listed, not run. newman is pinned and cached in target/ci-tools/postman/.
set -euo pipefail
cd "$(dirname "$0")/../.."
source .ci/lib.sh
started=$(date +%s)

NEWMAN=6.2.2
COLLECTION=openapi/crisp-gateway.postman.json
SKIPPED="Not run against the sandbox"

tools=$PWD/target/ci-tools/postman
if [ "$(cat "$tools/.pinned" 2>/dev/null)" != "newman=$NEWMAN" ]; then
  echo "installing newman $NEWMAN"
  rm -rf "$tools"
  mkdir -p "$tools"
  npm install --silent --no-audit --no-fund --prefix "$tools" "newman@$NEWMAN" >/dev/null
  echo "newman=$NEWMAN" >"$tools/.pinned"
fi

cargo build --quiet --bin crisp-gateway
bin=$PWD/target/debug/crisp-gateway

work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

export CRISP_GATEWAY_DATABASE_URL="sqlite://$work/gateway.db"
export CRISP_GATEWAY_LOG_FORMAT=json RUST_LOG=warn
# The open sandbox: any credentials work and the account's website springs into being.
sandbox_port=$(free_port)
"$bin" sandbox --listen "127.0.0.1:$sandbox_port" >"$work/sandbox.log" 2>&1 &
pids+=($!)
wait_for "http://127.0.0.1:$sandbox_port/v1/" "${pids[-1]}"

"$bin" workspace create postman >/dev/null
CRISP_KEY=sandbox-key "$bin" account add --workspace postman --label sandbox \
  --identifier sandbox-id --website-id 8c842203-7ed8-4e29-a608-7cf78a7d2fcc --default >/dev/null
key=$("$bin" key create --workspace postman --name newman)

gateway_port=$(free_port)
base="http://127.0.0.1:$gateway_port"
CRISP_GATEWAY_UPSTREAM="http://127.0.0.1:$sandbox_port/v1" \
  "$bin" serve --listen "127.0.0.1:$gateway_port" >"$work/gateway.log" 2>&1 &
pids+=($!)
wait_for "$base/healthz" "${pids[-1]}"

# Every top-level folder but the skipped one, in the collection's order.
mapfile -t folders < <(node -e '
  const c = require(process.argv[1]);
  for (const f of c.item) if (f.name !== process.argv[2]) console.log(f.name);
' "$PWD/$COLLECTION" "$SKIPPED")
folder_args=()
for f in "${folders[@]}"; do folder_args+=(--folder "$f"); done

echo "-- newman: ${#folders[@]} folders against the stateful sandbox"
status=0
"$tools/node_modules/.bin/newman" run "$COLLECTION" "${folder_args[@]}" \
  --env-var "baseUrl=$base" --env-var "apiKey=$key" \
  --reporters cli,json --reporter-json-export "$work/newman.json" \
  --reporter-cli-no-success-assertions --reporter-cli-no-console \
  >"$work/newman.log" 2>&1 || status=$?

node -e '
  const run = require(process.argv[1]).run;
  const s = run.stats;
  console.log(`requests: ${s.requests.total} (${s.requests.failed} failed); ` +
    `tests: ${s.assertions.total} (${s.assertions.failed} failed)`);
  for (const f of run.failures) {
    console.log(`FAILED ${f.source && f.source.name}: ${f.error.message}`);
  }
' "$work/newman.json" || true

echo "-- not run against the sandbox (from the folder \"$SKIPPED\"):"
node -e '
  const c = require(process.argv[1]);
  const skipped = c.item.find((f) => f.name === process.argv[2]);
  for (const i of (skipped ? skipped.item : [])) {
    const reason = (i.request.description || "").split("\n")[0];
    console.log(`  ${i.name}: ${reason}`);
  }
' "$PWD/$COLLECTION" "$SKIPPED"

if [ "$status" != 0 ]; then
  cat "$work/newman.log"
  echo "gateway log (last 30 lines):"
  tail -n 30 "$work/gateway.log"
  echo "newman failed" >&2
  exit 1
fi
echo "postman check passed in $(( $(date +%s) - started ))s"
