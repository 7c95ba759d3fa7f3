#!/usr/bin/env bash
# Proves the sandbox's fidelity with a client nobody here wrote: Crisp's official Node client
# (crisp-api, pinned) runs everyday calls, teams, the Knowledge Base tree and a tier refusal
# against `crisp-gateway sandbox`.
set -euo pipefail
cd "$(dirname "$0")/../.."

CRISP_API_VERSION=11.3.0
tools=target/ci-tools/node-client
if [ ! -f "$tools/node_modules/crisp-api/package.json" ] ||
   ! grep -q "\"version\": \"$CRISP_API_VERSION\"" "$tools/node_modules/crisp-api/package.json"; then
  mkdir -p "$tools"
  [ -f "$tools/package.json" ] || echo '{"name":"node-client-check","private":true}' > "$tools/package.json"
  npm install --prefix "$tools" --no-audit --no-fund --silent "crisp-api@$CRISP_API_VERSION"
fi

cargo build --quiet --bin crisp-gateway
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
log=$(mktemp)
./target/debug/crisp-gateway sandbox --listen "127.0.0.1:$port" 2>"$log" &
pid=$!
trap 'kill "$pid" 2>/dev/null || true; rm -f "$log"' EXIT

# Ready when the sandbox answers a catalog route (401 without credentials); at most ~10 s.
for _ in $(seq 1 100); do
  code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/v1/website/x/settings" || true)
  [ "$code" = 401 ] && break
  if ! kill -0 "$pid" 2>/dev/null; then cat "$log"; echo "the sandbox exited" >&2; exit 1; fi
  sleep 0.1
done
[ "$code" = 401 ] || { cat "$log"; echo "the sandbox did not become ready" >&2; exit 1; }

CRISP_API_TOOLS="$PWD/$tools" node .ci/checks/sandbox-node-client.mjs "http://127.0.0.1:$port"
