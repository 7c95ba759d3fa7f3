#!/usr/bin/env python3
"""Turns `bench/run --held`'s raw lines into the held-calls table (medians of runs).

usage: held.py RESULTS META LATENCY_SECONDS
"""

import os
import statistics
import sys
from collections import defaultdict

results_path, meta_path, latency = sys.argv[1], sys.argv[2], float(sys.argv[3]) * 1000
runs = defaultdict(list)  # (target, conns) -> [dict]
extras = defaultdict(list)  # (name, target, conns) -> [float]
for line in open(results_path):
    parts = line.split()
    if parts[0] == "RESULT":
        scenario, target, conns, _run = parts[1].split("|")
        if scenario != "held":
            continue
        requests, _s, rps, p50, _p90, p99, _p999, _mx, non2xx, errors, timeouts = parts[2:13]
        runs[(target, int(conns))].append(dict(
            rps=float(rps), p50=int(p50) / 1000, p99=int(p99) / 1000, requests=int(requests),
            non2xx=int(non2xx), errors=int(errors), timeouts=int(timeouts)))
    elif parts[0] == "EXTRA":
        fields = parts[1].split("|")
        if fields[0] == "cpu10k":
            extras[("cpu10k", fields[2], int(fields[3]))].append(float(parts[2]))
        elif fields[0].startswith("held_") and len(fields) == 4:
            extras[(fields[0], fields[1], int(fields[2]))].append(float(parts[2]))
        elif fields[0] == "held_workers":
            extras[("workers", "", int(fields[1]))].append(float(parts[2]))


def med(target, conns, field):
    rows = runs.get((target, conns))
    return statistics.median(r[field] for r in rows) if rows else None


def xmed(name, target, conns):
    values = extras.get((name, target, conns))
    return statistics.median(values) if values else None


def f(value, fmt="{:.0f}"):
    return "–" if value is None else fmt.format(value)


def ratio(a, b, fmt="{:.2f}×"):
    return "–" if a is None or not b else fmt.format(a / b)


print(open(meta_path).read().strip().replace("\n", "  \n"))
print()
print("### Calls held: an upstream answering after a fixed delay, nginx and the gateway\n")
print(f"Latencies are minus the upstream's {latency:.0f} ms. RSS per call held is (peak − idle) "
      "÷ connections, where idle is after one call (for the gateway: after its first key check, "
      "whose argon2 memory it hands back); *per added call* is the slope of peak RSS from the "
      "level before, which leaves the idle figure out. nginx's RSS is "
      "master + worker. *floor* is `bench/floor`, the gateway's stack (axum, hyper, hyper-util's "
      "client) proxying the call with none of the gateway's work: what the stack itself costs. "
      "*upstream over* is how the proxy reaches the upstream: HTTP/1.1 with a "
      "connection per call in flight, as nginx does, or HTTP/2 (`upstream_http = \"http2\"`), "
      "every call a stream on a shared connection (the upstream allows "
      f"{os.environ.get('BENCH_HELD_STREAMS', '128')} streams on one; nginx's default is 128), "
      "or HTTPS as the gateway reaches "
      "Crisp by default (`auto`: the TLS handshake picks HTTP/2 here). *shed* is non-2xx answers, *timed out* "
      "wrk's timeouts (other socket errors in brackets).\n")
print("| calls held | proxy | upstream over | nginx req/s | proxy req/s | proxy ÷ nginx "
      "| p50 + nginx / proxy (ms) | p99 + nginx / proxy (ms) "
      "| peak RSS nginx / proxy (MiB) | proxy ÷ nginx memory "
      "| KB per call held nginx / proxy | KB per added call nginx / proxy | CPU s per 10k nginx / proxy "
      "| shed nginx / proxy | timed out nginx / proxy |")
print("|---:|---|---|---:|---:|---:|---|---|---|---:|---|---|---|---|---|")
TARGETS = ("nginx", "floor", "gateway", "gateway-h2", "gateway-tls")
previous = {}
for conns in sorted({k[1] for k in runs}):
    workers = extras.get(("workers", "", conns))
    label = f"{conns:,}"
    if workers and workers[0] > 1:
        # Past what one process may open, nginx runs more workers (on the same core).
        label += f" (nginx: {workers[0]:.0f} workers)"
    cells = {}
    for t in TARGETS:
        idle, peak = xmed("held_idle_kb", t, conns), xmed("held_peak_kb", t, conns)
        cells[t] = dict(
            rps=med(t, conns, "rps"),
            p50=None if med(t, conns, "p50") is None else med(t, conns, "p50") - latency,
            p99=None if med(t, conns, "p99") is None else med(t, conns, "p99") - latency,
            peak=None if peak is None else peak / 1024,
            per=None if peak is None or idle is None else (peak - idle) / conns,
            slope=None if peak is None or t not in previous
            else (peak - previous[t][1]) / (conns - previous[t][0]),
            cpu=xmed("cpu10k", t, conns),
            shed=sum(r["non2xx"] for r in runs.get((t, conns), [])),
            timeouts=sum(r["timeouts"] for r in runs.get((t, conns), [])),
            other=sum(r["errors"] - r["timeouts"] for r in runs.get((t, conns), [])),
            present=(t, conns) in runs,
        )
    for t in TARGETS:
        peak = xmed("held_peak_kb", t, conns)
        if peak is not None:
            previous[t] = (conns, peak)
    n = cells["nginx"]

    def failures(c):
        return f"{c['timeouts']}" + (f" ({c['other']})" if c["other"] else "")

    for t, over in (("floor", "HTTP/1.1"), ("gateway", "HTTP/1.1"), ("gateway-h2", "HTTP/2"),
                    ("gateway-tls", "HTTPS, `auto` (HTTP/2)")):
        g = cells[t]
        if not g["present"]:
            continue

        def both(field, fmt="{:.0f}"):
            return f"{f(n[field], fmt)} / {f(g[field], fmt)}"

        name = "*floor*" if t == "floor" else "gateway"
        print(f"| {label} | {name} | {over} | {f(n['rps'])} | {f(g['rps'])} | {ratio(g['rps'], n['rps'])} "
              f"| {both('p50', '{:+.1f}')} | {both('p99', '{:+.1f}')} | {both('peak', '{:.1f}')} "
              f"| {ratio(g['peak'], n['peak'])} | {both('per', '{:.1f}')} | {both('slope', '{:.1f}')} | {both('cpu', '{:.2f}')} "
              f"| {n['shed']} / {g['shed']} | {failures(n)} / {failures(g)} |")
