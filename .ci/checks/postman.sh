#!/usr/bin/env bash
# Runs the committed Postman collection with newman, as the README says, against the gateway on
# the stateful `crisp-gateway sandbox`: every request must answer 200 with `ok: true`. The
# requests chain their ids (a conversation made first, its `session_id` kept for the rest), so
# this proves the collection runs top to bottom on a fresh sandbox. The requests of the folder
# `Not run against the sandbox` skip themselves (the account's tier cannot make them); they are
# listed with their reasons. The collection runs twice on the same sandbox: it cleans up after
# itself. newman is pinned and cached in target/ci-tools/postman/.
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

# Twice on the same sandbox: the collection cleans up after itself, so it runs again.
for run in $(seq 1 "${POSTMAN_RUNS:-2}"); do
echo "-- newman run $COLLECTION (the whole collection, as the README says), run $run"
status=0
"$tools/node_modules/.bin/newman" run "$COLLECTION" \
  --env-var "baseUrl=$base" --env-var "apiKey=$key" \
  --reporters cli,json --reporter-json-export "$work/newman.json" \
  --reporter-cli-no-success-assertions --reporter-cli-no-console \
  >"$work/newman.log" 2>&1 || status=$?

# newman's numbers, then the requests that skipped themselves with their reasons.
node - "$work/newman.json" "$PWD/$COLLECTION" "$SKIPPED" "$run" <<'JS' || status=1
const [report, collectionFile, skippedFolder, runNumber] = process.argv.slice(2);
const run = require(report).run;
const collection = require(collectionFile);
const folder = collection.item.find((f) => f.name === skippedFolder);
const skipped = folder ? folder.item : [];
const total = collection.item.reduce((n, f) => n + f.item.length, 0);
const s = run.stats;
const failedRequests = new Set(run.failures.map((f) => f.source && f.source.name));
console.log(`requests: ${total} in the collection; ${s.requests.total} sent, ` +
  `${s.requests.total - failedRequests.size} passed, ${failedRequests.size} failed, ` +
  `${total - s.requests.total} skipped; tests: ${s.assertions.total} (${s.assertions.failed} failed)`);
for (const f of run.failures) {
  console.log(`FAILED ${f.source && f.source.name}: ${f.error.message}`);
}
if (runNumber === "1") {
  console.log(`skipped (folder "${skippedFolder}"):`);
  for (const item of skipped) {
    const reason = (item.request.description || "").split("\n")[0]
      .replace(/^Not run against the sandbox: /, "");
    console.log(`  ${item.name}: ${reason}`);
  }
}
// Only the skipped folder may hold requests that were not sent.
if (total - s.requests.total !== skipped.length) {
  console.log(`expected ${skipped.length} skipped requests, got ${total - s.requests.total}`);
  process.exit(1);
}
JS

if [ "$status" != 0 ]; then
  cat "$work/newman.log"
  echo "gateway log (last 30 lines):"
  tail -n 30 "$work/gateway.log"
  echo "newman failed" >&2
  exit 1
fi
done
echo "postman check passed in $(( $(date +%s) - started ))s"
