#!/usr/bin/env bash
# Proves that clients generated from openapi/crisp-gateway.json with each generator's DEFAULT
# options are typed well enough to use as they are: openapi-typescript + openapi-fetch, the
# @hey-api/openapi-ts client, and openapi-python-client. One small program per client (in
# .ci/checks/clients/) lists conversations with the README's `{"query":{"per_page":20}}`, creates
# a conversation and reads its typed `session_id`, sends a message, and reads a profile's
# nickname — through typed result fields only (no casts, no `any`). Each must pass
# `tsc --strict --noEmit` / `mypy --strict` and then run against `crisp-gateway serve` in front of
# the stateful `crisp-gateway sandbox`. Tools are pinned and cached in target/ci-tools/clients/.
set -euo pipefail
cd "$(dirname "$0")/../.."
started=$(date +%s)
elapsed() { echo "($(( $(date +%s) - started ))s)"; }

OPENAPI_TYPESCRIPT=7.13.0
OPENAPI_FETCH=0.17.0
HEY_API=0.95.0 # 0.96+ needs Node >= 22.18; the system Node is 20
TYPESCRIPT=5.9.3
TYPES_NODE=20.19.43
PYTHON_CLIENT=0.29.1
MYPY=2.4.1

tools=$PWD/target/ci-tools/clients
programs=$PWD/.ci/checks/clients
npm_stamp="openapi-typescript=$OPENAPI_TYPESCRIPT openapi-fetch=$OPENAPI_FETCH hey-api=$HEY_API typescript=$TYPESCRIPT types-node=$TYPES_NODE"
if [ "$(cat "$tools/npm/.pinned" 2>/dev/null)" != "$npm_stamp" ]; then
  echo "installing npm tools ($npm_stamp)"
  rm -rf "$tools/npm"
  mkdir -p "$tools/npm"
  echo '{"name":"clients-check","private":true}' >"$tools/npm/package.json"
  npm install --silent --no-audit --no-fund --prefix "$tools/npm" \
    "openapi-typescript@$OPENAPI_TYPESCRIPT" "openapi-fetch@$OPENAPI_FETCH" \
    "@hey-api/openapi-ts@$HEY_API" "typescript@$TYPESCRIPT" "@types/node@$TYPES_NODE" >/dev/null
  echo "$npm_stamp" >"$tools/npm/.pinned"
fi
py_stamp="openapi-python-client=$PYTHON_CLIENT mypy=$MYPY"
if [ "$(cat "$tools/venv/.pinned" 2>/dev/null)" != "$py_stamp" ]; then
  echo "installing Python tools ($py_stamp)"
  rm -rf "$tools/venv"
  python3 -m venv "$tools/venv"
  "$tools/venv/bin/pip" install -q --disable-pip-version-check \
    "openapi-python-client==$PYTHON_CLIENT" "mypy==$MYPY"
  echo "$py_stamp" >"$tools/venv/.pinned"
fi
bin_npm=$tools/npm/node_modules/.bin
# openapi-python-client runs ruff (its dependency) from PATH on what it writes.
export PATH="$tools/venv/bin:$PATH"
echo "-- tools ready $(elapsed)"

cargo build --quiet --bin crisp-gateway
bin=$PWD/target/debug/crisp-gateway
spec=$PWD/openapi/crisp-gateway.json

work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
source .ci/lib.sh

# Run a step quietly; on failure show its output.
quiet() {
  local log=$work/step.log
  "$@" >"$log" 2>&1 || { cat "$log" >&2; echo "FAILED: $*" >&2; return 1; }
}

echo "-- generate the three clients with default options"
mkdir -p "$work/ts"
cp "$programs"/*.ts "$programs/tsconfig.json" "$work/ts/"
ln -s "$tools/npm/node_modules" "$work/ts/node_modules"
# In parallel: each generator is a single-threaded process.
"$bin_npm/openapi-typescript" "$spec" -o "$work/ts/schema.d.ts" >"$work/gen-oat.log" 2>&1 &
oat=$!
"$bin_npm/openapi-ts" -i "$spec" -o "$work/ts/hey-api" >"$work/gen-hey.log" 2>&1 &
hey=$!
"$tools/venv/bin/openapi-python-client" generate --path "$spec" --output-path "$work/py" \
  --overwrite >"$work/gen-py.log" 2>&1 &
py=$!
for job in "oat:$oat" "hey:$hey" "py:$py"; do
  wait "${job#*:}" || { cat "$work/gen-${job%%:*}.log" >&2; echo "FAILED: generating ${job%%:*}" >&2; exit 1; }
done
cp "$programs/python_client.py" "$work/py/"
echo "   generated $(elapsed)"

echo "-- tsc --strict (noEmitOnError) and mypy --strict"
# tsc type-checks and emits in one run (noEmitOnError), in parallel with mypy.
(cd "$work/ts" && "$bin_npm/tsc" -p tsconfig.json --outDir out >"$work/tsc.log" 2>&1) &
tsc=$!
(cd "$work/py" && "$tools/venv/bin/mypy" --strict --cache-dir "$tools/mypy-cache" python_client.py >"$work/mypy.log" 2>&1) &
mypy=$!
for job in "tsc:$tsc" "mypy:$mypy"; do
  wait "${job#*:}" || { cat "$work/${job%%:*}.log" >&2; echo "FAILED: ${job%%:*}" >&2; exit 1; }
done
echo "   type-checked $(elapsed)"

echo "-- run them against the gateway on the stateful sandbox"

export CRISP_GATEWAY_DATABASE_URL="sqlite://$work/gateway.db" RUST_LOG=warn
sandbox_port=$(free_port)
# Stateful (no --stateless): the conversation a program creates is the one it then reads.
"$bin" sandbox --listen "127.0.0.1:$sandbox_port" >"$work/sandbox.log" 2>&1 &
pids+=($!)
wait_for "http://127.0.0.1:$sandbox_port/v1/" "${pids[-1]}"

quiet "$bin" workspace create clients
CRISP_KEY=sandbox-key quiet "$bin" account add --workspace clients --label sandbox \
  --identifier sandbox-id --website-id 8c842203-7ed8-4e29-a608-7cf78a7d2fcc --default
key=$("$bin" key create --workspace clients --name clients 2>/dev/null)

gateway_port=$(free_port)
CRISP_GATEWAY_UPSTREAM="http://127.0.0.1:$sandbox_port/v1" \
  "$bin" serve --listen "127.0.0.1:$gateway_port" >"$work/gateway.log" 2>&1 &
pids+=($!)
wait_for "http://127.0.0.1:$gateway_port/healthz" "${pids[-1]}"
export GATEWAY="http://127.0.0.1:$gateway_port" KEY="$key"

failed=0
node "$work/ts/out/openapi_fetch.js" || failed=1
node "$work/ts/out/hey_api.js" || failed=1
(cd "$work/py" && "$tools/venv/bin/python" python_client.py) || failed=1
if [ "$failed" != 0 ]; then
  echo "--- gateway log" >&2; tail -n 40 "$work/gateway.log" >&2
  exit 1
fi
echo "client checks passed $(elapsed)"
