"""Hostile traffic against a real `crisp-gateway serve`, on loopback only, bounded in time.

Run by abuse.sh, which builds the binary and passes its path. Every phase prints one `ok:` line
or fails with what it saw:

1. 10,000 idle connections and 500 slowloris connections: `/healthz` and a real call each answer
   within 100 ms while they are open, and all of them are closed within the header timeout.
2. A 30 s flood of refused requests (no key, malformed keys, random well-formed keys) on
   60,000-character paths: the database and the log grow by less than 1 MiB.
3. A flood of wrong secrets for a known, uncached key id from one client: the real holder's
   first call, from another client, answers within 1 s.
4. An `Idempotency-Key` replayed by a read-only key and by a `list/*` key: 403, not the write.
5. kill -9 during 300 keyed writes, restart, retry every write: each retry replays, is sent once
   or says its outcome is unknown, and none waits longer than the request deadline allows.
"""

import asyncio
import json
import os
import random
import resource
import select
import signal
import socket
import string
import subprocess
import sys
import tempfile
import time

BIN = sys.argv[1]
# The default; opening the 10,500 connections takes well under a second of it.
HEADER_TIMEOUT_S = 10
REQUEST_TIMEOUT_S = 4
WEBSITE = "8c842203-7ed8-4e29-a608-7cf78a7d2fcc"
MIB = 1024 * 1024

passed = 0


def ok(message):
    global passed
    passed += 1
    print(f"ok: {message}", flush=True)


def fail(message):
    print(f"FAIL: {message}", file=sys.stderr, flush=True)
    for name in sorted(os.listdir(TMP)):
        if name.endswith(".log"):
            with open(os.path.join(TMP, name), errors="replace") as f:
                tail = f.read()[-3000:]
            print(f"--- {name} (tail)\n{tail}", file=sys.stderr)
    raise SystemExit(1)


def free_port():
    # Below the kernel's ephemeral range, so no outgoing connection (the flood's own, or a
    # restarted gateway's) can be given the port between this check and the bind.
    with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
        low = int(f.read().split()[0])
    for _ in range(200):
        port = random.randrange(20000, low)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    raise SystemExit("no free port below the ephemeral range")


TMP = tempfile.mkdtemp(prefix="abuse-")
DB_PATH = os.path.join(TMP, "gateway.db")
ENV = dict(
    os.environ,
    DATABASE_URL=f"sqlite://{DB_PATH}",
    CRISP_GATEWAY_LOG_FORMAT="json",
    CRISP_GATEWAY_HEADER_TIMEOUT=f"{HEADER_TIMEOUT_S}s",
    CRISP_GATEWAY_REQUEST_TIMEOUT=f"{REQUEST_TIMEOUT_S}s",
    CRISP_GATEWAY_UPSTREAM_TIMEOUT="2s",
    # The check sends far more than a key's ordinary budget on purpose.
    CRISP_GATEWAY_KEY_RATE_LIMIT="100000",
    CRISP_GATEWAY_KEY_BURST="100000",
    CRISP_GATEWAY_ACCOUNT_RATE_LIMIT="0",
    CRISP_GATEWAY_ACCOUNT_MAX_CONCURRENCY="0",
)
ENV.pop("RUST_LOG", None)
PROCS = []


def cli(*args, stdin=None, env=None):
    result = subprocess.run(
        [BIN, *args],
        env=dict(ENV, **(env or {})),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )
    if result.returncode != 0:
        fail(f"`crisp-gateway {' '.join(args)}` failed: {result.stderr.strip()}")
    return result.stdout.strip()


def start(args, log_name, env=None):
    log = open(os.path.join(TMP, log_name), "ab")
    proc = subprocess.Popen(
        [BIN, *args], env=dict(ENV, **(env or {})), stdout=log, stderr=log
    )
    PROCS.append(proc)
    return proc


async def wait_ready(port, proc):
    for _ in range(300):
        if proc.poll() is not None:
            fail(f"the process on port {port} exited with {proc.returncode}")
        try:
            status, _, _ = await http("GET", port, "/healthz", timeout=1)
            if status == 200:
                return
        except (OSError, asyncio.TimeoutError, ValueError):
            pass
        await asyncio.sleep(0.1)
    fail(f"nothing answered on port {port}")


# --- a minimal HTTP/1.1 client over asyncio streams -------------------------------------------


async def read_response(reader):
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
    if "content-length" in headers:
        body = await reader.readexactly(int(headers["content-length"]))
    elif headers.get("transfer-encoding", "").lower() == "chunked":
        body = b""
        while True:
            size = int((await reader.readuntil(b"\r\n")).strip(), 16)
            chunk = await reader.readexactly(size + 2)
            if size == 0:
                break
            body += chunk[:-2]
    else:
        body = await reader.read()
    return status, headers, body


def encode(method, path, headers=None, body=b""):
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1"]
    for name, value in (headers or {}).items():
        lines.append(f"{name}: {value}")
    if body or method == "POST":
        lines.append("Content-Type: application/json")
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def http(method, port, path, headers=None, body=b"", timeout=10, source="127.0.0.1"):
    """One request on a new connection; returns (status, headers, body)."""

    async def go():
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, local_addr=(source, 0)
        )
        try:
            writer.write(encode(method, path, dict(headers or {}, Connection="close"), body))
            await writer.drain()
            return await read_response(reader)
        finally:
            writer.close()

    return await asyncio.wait_for(go(), timeout)


def bearer(key):
    return {"Authorization": f"Bearer {key}"}


async def call(port, key, action, body, headers=None, timeout=10, source="127.0.0.1"):
    status, response_headers, raw = await http(
        "POST",
        port,
        f"/api/crisp/{action}",
        dict(bearer(key), **(headers or {})),
        json.dumps(body).encode(),
        timeout=timeout,
        source=source,
    )
    try:
        parsed = json.loads(raw) if raw else None
    except ValueError:
        parsed = None
    return status, response_headers, parsed


def reason(payload):
    return ((payload or {}).get("error") or {}).get("reason")


def random_key(key_id=None):
    alphabet = string.ascii_letters + string.digits
    key_id = key_id or "".join(random.choices(alphabet, k=16))
    return f"sk_live_{key_id}_{''.join(random.choices(alphabet, k=40))}"


async def timed(coroutine):
    started = time.monotonic()
    result = await coroutine
    return result, (time.monotonic() - started) * 1000


# --- the phases ---------------------------------------------------------------------------------


async def connection_flood(port, key):
    # Plain blocking sockets: ten thousand loopback connects take well under a second this way.
    idle, slow = [], []
    began = time.monotonic()
    for n in range(10_000):
        try:
            idle.append(socket.create_connection(("127.0.0.1", port), timeout=5))
        except OSError as e:
            fail(f"opening idle connection {n} failed: {e}")
    opened = time.monotonic()
    for _ in range(500):
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.sendall(b"POST /api/crisp/list/conversations HTTP/1.1\r\nHost: x\r\n")
        slow.append(s)
    held = time.monotonic() - began

    async def trickle():
        while True:
            await asyncio.sleep(0.5)
            for s in slow:
                try:
                    s.send(b"X")
                except OSError:
                    pass

    trickling = asyncio.create_task(trickle())

    async def held_by_gateway():
        _, _, metrics = await http("GET", port, "/metrics", timeout=5)
        return next(
            (
                float(line.rsplit(" ", 1)[1])
                for line in metrics.decode().splitlines()
                if line.startswith("crisp_gateway_connections_open") and 'listener="main"' in line
            ),
            0,
        )

    # Timed once the gateway has accepted them all: "while they are held", not while the
    # kernel's accept queue is still draining.
    held_now = 0
    for _ in range(100):
        held_now = await held_by_gateway()
        if held_now >= 10_400:
            break
        await asyncio.sleep(0.1)
    if held_now < 10_400:
        fail(f"the gateway accepted only {held_now:.0f} of 10,500 connections")
    (health, _, _), health_ms = await timed(http("GET", port, "/healthz", timeout=5))
    (status, _, payload), call_ms = await timed(
        call(port, key, "list/conversations", {}, timeout=5)
    )
    if health != 200 or health_ms > 100:
        fail(f"/healthz under 10,500 held connections: {health} in {health_ms:.0f} ms")
    if status != 200 or call_ms > 100:
        fail(f"a real call under 10,500 held connections: {status} {payload} in {call_ms:.0f} ms")
    ok(
        f"10,000 idle + 500 slowloris connections opened in {held:.1f} s, {held_now:.0f} open at "
        f"once: /healthz answered in "
        f"{health_ms:.1f} ms, a real call in {call_ms:.1f} ms"
    )

    # Each socket is closed by the gateway when reading from it gives end-of-file (or a reset).
    poller = select.poll()
    sockets = {s.fileno(): s for s in idle + slow}
    for fd in sockets:
        poller.register(fd, select.POLLIN)
    open_fds = set(sockets)
    give_up = opened + HEADER_TIMEOUT_S + 5
    while open_fds and time.monotonic() < give_up:
        for fd, _ in poller.poll(200):
            try:
                data = sockets[fd].recv(65536)
            except OSError:
                data = b""
            if not data:
                poller.unregister(fd)
                open_fds.discard(fd)
        await asyncio.sleep(0)
    waited = time.monotonic() - opened
    trickling.cancel()
    for s in idle + slow:
        s.close()
    if open_fds:
        fail(f"{len(open_fds)} of 10,500 idle/slowloris connections were still open after {waited:.1f} s")
    ok(
        f"all 10,500 idle and slowloris connections closed by the gateway within {waited:.1f} s "
        f"(header timeout {HEADER_TIMEOUT_S} s)"
    )


def sizes(log_path):
    db = sum(
        os.path.getsize(DB_PATH + suffix)
        for suffix in ("", "-wal", "-shm")
        if os.path.exists(DB_PATH + suffix)
    )
    return db, os.path.getsize(log_path)


async def refusal_flood(port, log_path):
    long_path = "/api/crisp/" + "a" * 60_000
    before = sizes(log_path)
    deadline = time.monotonic() + 30
    sent = 0
    statuses = {}

    async def worker(n):
        nonlocal sent
        reader = writer = None
        while time.monotonic() < deadline:
            try:
                if writer is None:
                    reader, writer = await asyncio.open_connection(
                        "127.0.0.1", port, local_addr=("127.0.0.3", 0)
                    )
                kind = sent % 3
                headers = (
                    {}
                    if kind == 0
                    else {"Authorization": "Bearer sk_live_nope" if kind == 1 else f"Bearer {random_key()}"}
                )
                path = long_path if n % 2 == 0 else "/api/crisp/send/message/in/conversation"
                writer.write(encode("POST", path, headers, b"{}"))
                await writer.drain()
                status, response_headers, _ = await read_response(reader)
                sent += 1
                statuses[status] = statuses.get(status, 0) + 1
                if response_headers.get("connection", "").lower() == "close":
                    writer.close()
                    writer = None
            except (ConnectionError, OSError, asyncio.IncompleteReadError):
                if writer:
                    writer.close()
                writer = None
        if writer:
            writer.close()

    await asyncio.gather(*(worker(n) for n in range(32)))
    # Whatever the gateway buffers (audit batches, log lines) is written within a few seconds.
    await asyncio.sleep(3)
    after = sizes(log_path)
    grown_db, grown_log = after[0] - before[0], after[1] - before[1]
    if sent < 1000:
        fail(f"the flood sent only {sent} requests")
    if grown_db >= MIB or grown_log >= MIB:
        fail(
            f"after {sent} refused requests in 30 s the database grew {grown_db} bytes and the log "
            f"{grown_log} bytes (limit 1 MiB each); statuses {statuses}"
        )
    ok(
        f"30 s flood of {sent} refused requests (statuses {statuses}): database +{grown_db} B, "
        f"log +{grown_log} B"
    )


async def wrong_secret_flood(port, key):
    key_id = key.split("_")[2]
    stop = time.monotonic() + 4
    counts = {}

    async def attacker():
        while time.monotonic() < stop:
            try:
                status, _, _ = await call(
                    port, random_key(key_id), "list/conversations", {}, timeout=10, source="127.0.0.2"
                )
                counts[status] = counts.get(status, 0) + 1
            except (ConnectionError, OSError, asyncio.TimeoutError, asyncio.IncompleteReadError):
                counts["error"] = counts.get("error", 0) + 1

    attackers = [asyncio.create_task(attacker()) for _ in range(200)]
    await asyncio.sleep(1)
    (status, _, payload), elapsed = await timed(
        call(port, key, "list/conversations", {}, timeout=10)
    )
    await asyncio.gather(*attackers)
    if status != 200 or elapsed > 1000:
        fail(f"the real key's first call during a wrong-secret flood: {status} {payload} in {elapsed:.0f} ms")
    ok(f"wrong-secret flood on a known key id ({counts}): the holder's first call answered in {elapsed:.0f} ms")


async def replay_by_narrow_keys(port, key):
    read_only = cli("key", "create", "--workspace", "acme", "--read-only")
    listing = cli("key", "create", "--workspace", "acme", "--actions", "list/*")
    headers = {"Idempotency-Key": "abuse-replay-1"}
    status, _, first = await call(port, key, "create/new/conversation", {}, headers)
    if status != 200:
        fail(f"the first keyed write answered {status}: {first}")
    for name, narrow in (("read-only", read_only), ("list/*", listing)):
        status, response_headers, payload = await call(
            port, narrow, "create/new/conversation", {}, headers
        )
        if status != 403 or "idempotent-replayed" in response_headers:
            fail(f"a {name} key replaying another key's write got {status}: {payload}")
    ok("a read-only key and a list/* key replaying a write's Idempotency-Key get 403")


async def crash_during_writes(port, key, restart):
    keys = [f"crash-{n}" for n in range(300)]
    first = {}

    async def writer(chunk):
        for idem in chunk:
            try:
                status, headers, payload = await call(
                    port, key, "create/new/conversation", {}, {"Idempotency-Key": idem}, timeout=15
                )
                first[idem] = (status, (payload or {}).get("result"))
            except (ConnectionError, OSError, asyncio.TimeoutError, asyncio.IncompleteReadError):
                first[idem] = (None, None)

    tasks = [asyncio.create_task(writer(keys[n::30])) for n in range(30)]
    await asyncio.sleep(1.5)
    restart_started = await restart()
    await asyncio.gather(*tasks)
    answered_before = sum(1 for status, _ in first.values() if status == 200)
    if answered_before == 300:
        fail("every write finished before the kill; the check proves nothing")

    outcomes = {"replayed": 0, "sent": 0, "unknown": 0}
    slowest = 0.0

    async def retry(idem):
        nonlocal slowest
        started = time.monotonic()
        while True:
            status, headers, payload = await call(
                port, key, "create/new/conversation", {}, {"Idempotency-Key": idem}, timeout=30
            )
            waited = time.monotonic() - started
            if status == 409 and reason(payload) == "idempotency_in_progress":
                if waited > 3 * REQUEST_TIMEOUT_S + 10:
                    fail(f"{idem}: still in progress {waited:.0f} s after the restart")
                await asyncio.sleep(0.5)
                continue
            slowest = max(slowest, waited)
            before_status, before_result = first[idem]
            if status == 200 and headers.get("idempotent-replayed") == "true":
                outcomes["replayed"] += 1
                if before_status == 200 and payload.get("result") != before_result:
                    fail(f"{idem}: the replay differs from the first answer")
            elif status == 200:
                if before_status == 200:
                    fail(f"{idem}: answered before the kill, then sent again after it")
                outcomes["sent"] += 1
            elif status == 409 and reason(payload) == "idempotency_outcome_unknown":
                if before_status == 200:
                    fail(f"{idem}: answered before the kill, but its outcome is 'unknown' after")
                outcomes["unknown"] += 1
            else:
                fail(f"{idem}: retry after the restart answered {status}: {payload}")
            return

    # Thirty clients retry, as thirty wrote.
    gate = asyncio.Semaphore(30)

    async def retry_gated(idem):
        async with gate:
            await retry(idem)

    await asyncio.gather(*(retry_gated(idem) for idem in keys))
    if slowest > 3 * REQUEST_TIMEOUT_S + 10:
        fail(f"a retry waited {slowest:.1f} s")

    # Count what Crisp (the sandbox) holds: at most one conversation per key.
    total, page = 0, 1
    while True:
        status, _, payload = await call(port, key, "list/conversations", {"pageNumber": page})
        if status != 200:
            fail(f"listing conversations answered {status}: {payload}")
        if not payload["result"]:
            break
        total += len(payload["result"])
        page += 1
    # One conversation was made by the replay phase; each key made at most one.
    made = total - 1
    certain = outcomes["replayed"] + outcomes["sent"]
    if not certain <= made <= certain + outcomes["unknown"]:
        fail(f"Crisp holds {made} conversations from 300 keyed writes; outcomes {outcomes}")
    ok(
        f"kill -9 during 300 keyed writes ({answered_before} answered before it): after restart "
        f"{outcomes}; Crisp holds {made} conversations, none twice; slowest retry {slowest:.1f} s"
    )


async def main():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if hard < 12_000:
        fail(f"the open-file limit is {hard}; the check needs 12,000 descriptors")

    sandbox_port, port = free_port(), free_port()
    sandbox = start(["sandbox", "--listen", f"127.0.0.1:{sandbox_port}"], "sandbox.log")
    await asyncio.sleep(0.5)
    ENV["CRISP_GATEWAY_UPSTREAM"] = f"http://127.0.0.1:{sandbox_port}/v1"
    cli("migrate")
    cli("workspace", "create", "acme")
    cli(
        "account", "add", "--workspace", "acme", "--label", "main", "--identifier", "sandbox-id",
        "--website-id", WEBSITE, "--default", env={"CRISP_KEY": "sandbox-key"},
    )
    key = cli("key", "create", "--workspace", "acme")
    holder = cli("key", "create", "--workspace", "acme", "--name", "holder")

    log_path = os.path.join(TMP, "gateway.log")
    gateway = start(["serve", "--listen", f"127.0.0.1:{port}"], "gateway.log")
    await wait_ready(port, gateway)
    if sandbox.poll() is not None:
        fail("the sandbox exited")

    # ABUSE_PHASES=1,3 runs some phases only, when working on one of them.
    phases = os.environ.get("ABUSE_PHASES", "1,2,3,4,5").split(",")
    # The key's one argon2 verification happens here, not inside the timed calls.
    status, _, payload = await call(port, key, "list/conversations", {})
    if status != 200:
        fail(f"the first call answered {status}: {payload}")
    if "1" in phases:
        await connection_flood(port, key)
    if "2" in phases:
        await refusal_flood(port, log_path)
    if "3" in phases:
        await wrong_secret_flood(port, holder)
    if "4" in phases:
        await replay_by_narrow_keys(port, key)
    if "5" not in phases:
        print(f"abuse: {passed} passed, 0 failed (phases {','.join(phases)})", flush=True)
        return

    # A slow Crisp for the crash, so that writes are in flight when the process dies.
    sandbox.terminate()
    sandbox.wait()
    sandbox = start(
        ["sandbox", "--listen", f"127.0.0.1:{sandbox_port}", "--latency", "100ms..400ms"],
        "sandbox-slow.log",
    )
    await asyncio.sleep(0.5)
    # The sandbox's memory went with it: make the first conversation again.
    status, _, payload = await call(port, key, "create/new/conversation", {})
    if status != 200:
        fail(f"a write through the slow sandbox answered {status}: {payload}")

    state = {"gateway": gateway}

    async def restart():
        state["gateway"].send_signal(signal.SIGKILL)
        state["gateway"].wait()
        started = time.monotonic()
        state["gateway"] = start(["serve", "--listen", f"127.0.0.1:{port}"], "gateway-restarted.log")
        await wait_ready(port, state["gateway"])
        return started

    await crash_during_writes(port, key, restart)
    print(f"abuse: {passed} passed, 0 failed", flush=True)


try:
    asyncio.run(main())
finally:
    for proc in PROCS:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
