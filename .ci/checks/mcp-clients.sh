#!/usr/bin/env bash
# The MCP endpoint with a client nobody here wrote: the official Python SDK (`mcp` on PyPI,
# pinned) against `crisp-gateway serve`, whose upstream is `crisp-gateway sandbox`. Both run
# on free loopback ports with a throwaway SQLite database; the workspace, key and account are
# made with the CLI. Tools are installed into target/ci-tools/ and reused on later runs.
set -euo pipefail
cd "$(dirname "$0")/../.."

MCP_VERSION=2.3.0
VENV=target/ci-tools/mcp-$MCP_VERSION
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import mcp' 2>/dev/null; then
  echo "installing mcp==$MCP_VERSION into $VENV"
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "mcp==$MCP_VERSION"
fi

cargo build --quiet --bin crisp-gateway
BIN=$PWD/target/debug/crisp-gateway

TMP=$(mktemp -d)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$TMP"
}
trap cleanup EXIT

source .ci/lib.sh

SANDBOX_PORT=$(free_port)
# --stateless: the check is about the MCP protocol path, so any session id it names answers.
"$BIN" sandbox --stateless --listen "127.0.0.1:$SANDBOX_PORT" >"$TMP/sandbox.log" 2>&1 &
PIDS+=($!)
wait_for "http://127.0.0.1:$SANDBOX_PORT/v1" "${PIDS[-1]}" || { cat "$TMP"/*.log >&2; exit 1; }

export DATABASE_URL="sqlite://$TMP/gw.db"
export CRISP_GATEWAY_UPSTREAM="http://127.0.0.1:$SANDBOX_PORT/v1"
"$BIN" workspace create w >/dev/null 2>&1
KEY=$("$BIN" key create --workspace w 2>/dev/null)
CRISP_KEY=k "$BIN" account add --workspace w --label main --identifier i --website-id site1 --default >/dev/null 2>&1

PORT=$(free_port)
CRISP_GATEWAY_LISTEN="127.0.0.1:$PORT" "$BIN" serve >"$TMP/gateway.log" 2>&1 &
PIDS+=($!)
wait_for "http://127.0.0.1:$PORT/healthz" "${PIDS[-1]}" || { cat "$TMP"/*.log >&2; exit 1; }

if ! "$VENV/bin/python" .ci/checks/mcp_client.py "http://127.0.0.1:$PORT" "$KEY"; then
  echo "--- gateway log" >&2; tail -n 50 "$TMP/gateway.log" >&2
  exit 1
fi

# An MCP tool call's access line names its action and account, as a REST call's does.
kill "${PIDS[-1]}" 2>/dev/null; wait "${PIDS[-1]}" 2>/dev/null || true
GATEWAY_LOG=$TMP/gateway.log

# The size cap needs a list longer than the cap: a stateful sandbox seeded with conversations,
# and a gateway whose MCP limit is a few kilobytes.
{
  printf '[[account]]\nidentifier = "i"\nkey = "k"\ntier = "website"\nwebsites = ["site1"]\n\n'
  printf '[[website]]\nid = "site1"\n'
  for n in $(seq 1 40); do
    printf '\n[[website.conversation]]\nnickname = "Visitor %s"\nemail = "visitor%s@example.com"\nstate = "unresolved"\nmessages = [{ from = "user", content = "Hello, I need help with order %s." }]\n' "$n" "$n" "$n"
  done
} >"$TMP/seed.toml"
SEEDED_PORT=$(free_port)
"$BIN" sandbox --seed "$TMP/seed.toml" --listen "127.0.0.1:$SEEDED_PORT" >"$TMP/seeded.log" 2>&1 &
PIDS+=($!)
wait_for "http://127.0.0.1:$SEEDED_PORT/v1" "${PIDS[-1]}" || { cat "$TMP"/seeded.log >&2; exit 1; }
CAPPED_PORT=$(free_port)
CRISP_GATEWAY_UPSTREAM="http://127.0.0.1:$SEEDED_PORT/v1" CRISP_GATEWAY_MCP_MAX_RESULT=4096 \
  CRISP_GATEWAY_LISTEN="127.0.0.1:$CAPPED_PORT" "$BIN" serve >"$TMP/capped.log" 2>&1 &
PIDS+=($!)
wait_for "http://127.0.0.1:$CAPPED_PORT/healthz" "${PIDS[-1]}" || { cat "$TMP"/capped.log >&2; exit 1; }
if ! "$VENV/bin/python" .ci/checks/mcp_client.py "http://127.0.0.1:$CAPPED_PORT" "$KEY" size-cap; then
  echo "--- gateway log" >&2; tail -n 50 "$TMP/capped.log" >&2
  exit 1
fi

if ! grep -E 'path=/mcp/all .*action=send/message/in/conversation .*account_id=' "$GATEWAY_LOG" >/dev/null \
  && ! grep -E '"path":"/mcp/all".*"action":"send/message/in/conversation".*"account_id"' "$GATEWAY_LOG" >/dev/null; then
  echo "no MCP access line with its action and account:" >&2
  grep '/mcp' "$GATEWAY_LOG" | head -n 5 >&2
  exit 1
fi
echo "ok - MCP access lines carry the action and the account"
