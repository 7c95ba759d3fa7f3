#!/usr/bin/env bash
# Three `crisp-gateway serve` replicas on one Postgres database and the sandbox for Crisp; a key
# with `--quota 500/day`; a client spreading concurrent calls over the three until every one
# refuses: exactly 500 calls succeed, then each replica answers 429 `quota_exceeded` with the
# reset time (`resets_at`, `Retry-After`, `retry_after_seconds`, `RateLimit: "quota";r=0`).
# `usage --format json` then reports the key's calls, 500 of them answered by Crisp, once the
# replicas' batches are written (every 2 s).
set -euo pipefail
cd "$(dirname "$0")/../.."
source .ci/postgres.sh
source .ci/lib.sh
ensure_postgres

postgres_gateways quotas

# The quota is what this check measures: the key's rate and the account's budget (both held
# across the replicas) stay out of its way.
export CRISP_GATEWAY_KEY_RATE_LIMIT=0
export CRISP_GATEWAY_ACCOUNT_RATE_LIMIT=1000 CRISP_GATEWAY_ACCOUNT_BURST=1000
export CRISP_GATEWAY_ACCOUNT_MAX_CONCURRENCY=256
start_sandbox
seed_acme
KEY=$("$BIN" key create --workspace acme --name quota --quota 500/day 2>/dev/null)
KEY_ID=$(echo "$KEY" | cut -d_ -f3)

start_replicas 3

# The client: 24 threads, each call to the next replica in turn, until no replica admits a call
# in two rounds a little over a second apart (a replica answers a spent quota from memory for a
# second, and may still hold a claimed call or two, which the rounds spend).
KEY="$KEY" python3 - "$TMP/result.json" "${PORTS[@]}" <<'PY' || fail "the client failed"
import itertools, json, os, sys, threading, time, urllib.request, urllib.error

out, ports = sys.argv[1], sys.argv[2:]
key = os.environ["KEY"]
lock = threading.Lock()
statuses = {}
problems = []

def call(port):
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/crisp/list/conversations", data=b"{}", method="POST",
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            status, body, headers = response.status, response.read(), response.headers
    except urllib.error.HTTPError as e:
        status, body, headers = e.code, e.read(), e.headers
    with lock:
        statuses[status] = statuses.get(status, 0) + 1
    return status, body, headers

turn = itertools.count()
stop = threading.Event()
refused_by = set()

def worker():
    while not stop.is_set():
        port = ports[next(turn) % len(ports)]
        status, body, headers = call(port)
        if status == 429 and json.loads(body)["error"]["reason"] != "quota_exceeded":
            # A thread cannot end the script: note it, stop, and fail after the join.
            with lock:
                problems.append(f"a 429 that is not quota_exceeded from {port}: {body[:300]!r}")
            stop.set()
        elif status == 429:
            with lock:
                refused_by.add(port)
                if len(refused_by) == len(ports):
                    stop.set()
        elif status != 200:
            with lock:
                problems.append(f"unexpected {status} from {port}: {body[:300]!r}")
            stop.set()

started = time.time()
threads = [threading.Thread(target=worker) for _ in range(24)]
for t in threads: t.start()
for t in threads: t.join()
load_s = time.time() - started
if problems:
    sys.exit("\n".join(problems[:5]))

quiet_rounds = 0
while quiet_rounds < 2:
    admitted = False
    last = {}
    for port in ports:
        status, body, headers = call(port)
        if status == 200:
            admitted = True
        last[port] = (status, json.loads(body), dict(headers))
    quiet_rounds = 0 if admitted else quiet_rounds + 1
    time.sleep(1.2)
    if time.time() - started > 45:
        print("still admitting calls after 45 s", file=sys.stderr)
        sys.exit(1)
json.dump({"statuses": statuses, "last": last, "load_s": load_s}, open(out, "w"))
PY

python3 - "$TMP/result.json" <<'PY' || fail "the quota was not held exactly"
import json, sys, datetime
result = json.load(open(sys.argv[1]))
statuses = {int(k): v for k, v in result["statuses"].items()}
ok = statuses.get(200, 0)
assert ok == 500, f"{ok} calls succeeded across the replicas, not 500: {statuses}"
assert set(statuses) <= {200, 429}, statuses
tomorrow = (datetime.datetime.now(datetime.timezone.utc).date() + datetime.timedelta(days=1))
midnight = tomorrow.strftime("%Y-%m-%dT00:00:00Z")
for port, (status, body, headers) in result["last"].items():
    headers = {k.lower(): v for k, v in headers.items()}
    error = body["error"]
    assert status == 429 and error["reason"] == "quota_exceeded", (port, status, body)
    assert error["resets_at"] == midnight, (port, error["resets_at"], midnight)
    assert int(headers["retry-after"]) == error["retry_after_seconds"] > 0, (port, headers, error)
    assert headers["ratelimit-policy"] == '"quota";q=500;w=86400', (port, headers)
    assert headers["ratelimit"].startswith('"quota";r=0;t='), (port, headers)
print(f"ok: exactly 500 of {sum(statuses.values())} calls succeeded across 3 replicas "
      f"({result['load_s']:.1f} s of load), then quota_exceeded until {midnight} on every replica")
PY

# The usage counts reach the database every 2 s; poll a little longer than that.
for _ in $(seq 1 20); do
  "$BIN" usage --workspace acme --since 1d --format json >"$TMP/usage.json" 2>/dev/null
  if python3 - "$TMP/usage.json" "$TMP/result.json" "$KEY_ID" <<'PY'
import json, sys
lines = json.load(open(sys.argv[1]))
sent = sum(json.load(open(sys.argv[2]))["statuses"].values())
line = next((l for l in lines if l.get("key_id") == sys.argv[3]), None)
sys.exit(0 if line and line["crisp_2xx"] == 500 and line["calls"] == sent
         and line["refused"] == sent - 500 else 1)
PY
  then
    echo "ok: usage reports the key's calls, 500 answered by Crisp: $(cat "$TMP/usage.json" | tr -d ' \n')"
    echo "quotas: 2 passed, 0 failed"
    exit 0
  fi
  sleep 0.5
done
fail "usage does not report the key's calls: $(cat "$TMP/usage.json")"
