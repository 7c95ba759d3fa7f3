#!/usr/bin/env bash
# The web console in a real browser: Debian's chromium and chromium-driver (installed when
# missing) drive /admin/ on a `crisp-gateway serve` whose Crisp is `crisp-gateway sandbox`,
# through WebDriver (console_driver.py, Python standard library only): sign in, create a
# workspace, add and test an account, create a key and see it once (not again after a reload),
# call with it, see the usage chart, revoke the key, read the audit. Screenshots go to
# target/console-screens/.
set -euo pipefail
cd "$(dirname "$0")/../.."
source .ci/lib.sh

if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
  echo "installing chromium and chromium-driver"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
fi

cargo build --quiet --bin crisp-gateway
BIN=$PWD/target/debug/crisp-gateway
SHOTS=$PWD/target/console-screens
rm -rf "$SHOTS" && mkdir -p "$SHOTS"

TMP=$(mktemp -d)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$TMP" "$SHOTS/.key"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; tail -n 20 "$TMP"/*.log >&2 || true; exit 1; }

export DATABASE_URL="sqlite://$TMP/gateway.db"
SANDBOX_PORT=$(free_port)
"$BIN" sandbox --listen "127.0.0.1:$SANDBOX_PORT" >"$TMP/sandbox.log" 2>&1 &
PIDS+=($!)
wait_for "http://127.0.0.1:$SANDBOX_PORT/v1" "${PIDS[-1]}" || fail "the sandbox did not start"
export CRISP_GATEWAY_UPSTREAM="http://127.0.0.1:$SANDBOX_PORT/v1"

"$BIN" migrate 2>/dev/null
TOKEN=$("$BIN" admin-token create --name console-ci 2>/dev/null)

PORT=$(free_port)
ADMIN_PORT=$(free_port)
CRISP_GATEWAY_LISTEN="127.0.0.1:$PORT" CRISP_GATEWAY_ADMIN_LISTEN="127.0.0.1:$ADMIN_PORT" \
  "$BIN" serve >"$TMP/gateway.log" 2>&1 &
PIDS+=($!)
wait_for "http://127.0.0.1:$ADMIN_PORT/admin/" "${PIDS[-1]}" || fail "the gateway did not start"

DRIVER_PORT=$(free_port)
chromedriver --port="$DRIVER_PORT" >"$TMP/chromedriver.log" 2>&1 &
PIDS+=($!)
wait_for "http://127.0.0.1:$DRIVER_PORT/status" "${PIDS[-1]}" || fail "chromedriver did not start"

python3 .ci/checks/console_driver.py "http://127.0.0.1:$DRIVER_PORT" "http://127.0.0.1:$ADMIN_PORT" \
  "http://127.0.0.1:$PORT" "$TOKEN" "$SHOTS" "$TMP/profile" || fail "the console test failed (screenshots in $SHOTS)"

KEY=$(cat "$SHOTS/.key")
if grep -qF -e "$TOKEN" -e "$KEY" -e sandbox-key "$TMP/gateway.log"; then fail "a secret appears in the gateway's log"; fi
echo "ok: no admin token, key or Crisp key in the gateway's log"
echo "screenshots: $(ls "$SHOTS" | tr '\n' ' ')"
echo "console: 9 passed, 0 failed"
