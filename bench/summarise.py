#!/usr/bin/env python3
"""Turns bench/run's raw lines into the Markdown tables of bench/README.md (medians of runs)
and checks the targets.

usage: summarise.py RESULTS META [budgets]   (budgets: only the budgets comparison)
"""

import statistics
import sys
from collections import defaultdict

results_path, meta_path = sys.argv[1], sys.argv[2]
runs = defaultdict(list)  # (scenario, target, conns) -> [dict]
extras = defaultdict(list)  # name -> [float]
for line in open(results_path):
    parts = line.split()
    if parts[0] == "RESULT":
        scenario, target, conns, _run = parts[1].split("|")
        requests, seconds, rps, p50, p90, p99, p999, mx, non2xx, errors = parts[2:12]
        runs[(scenario, target, int(conns))].append(
            dict(rps=float(rps), p50=int(p50) / 1000, p99=int(p99) / 1000,
                 p999=int(p999) / 1000, bad=int(non2xx) + int(errors))
        )
    elif parts[0] == "EXTRA":
        name = parts[1].rsplit("|", 1)[0] if parts[1].count("|") else parts[1]
        extras[name].append(float(parts[2]))


def med(key, field):
    rows = runs.get(key)
    return statistics.median(r[field] for r in rows) if rows else None


def bad(key):
    return sum(r["bad"] for r in runs.get(key, []))


def xmed(name):
    values = extras.get(name)
    return statistics.median(values) if values else None


def f(value, fmt="{:.0f}"):
    return "–" if value is None else fmt.format(value)


print(open(meta_path).read().strip().replace("\n", "  \n"))
print()
checks = []


def budgets_section():
    """Shared budgets (leases in Postgres) against budgets per process, both on Postgres."""
    local, shared = (("paced-small", f"gateway-budgets-{c}", 64) for c in ("local", "shared"))
    if not (runs.get(local) and runs.get(shared)):
        return
    print("### Global budgets: shared across replicas against per process (Postgres, 64 connections)\n")
    print("| budgets | paced p50 (ms) | paced p99 (ms) | saturated req/s | saturated p99 (ms) "
          "| CPU s per 10k (saturated) |")
    print("|---|---:|---:|---:|---:|---:|")
    for config, name in (("local", "per process (`shared_budgets = false`)"),
                         ("shared", "shared across replicas (leases, the default)")):
        paced, sat = ("paced-small", f"gateway-budgets-{config}", 64), ("read-small", f"gateway-budgets-{config}", 64)
        print(f"| {name} | {f(med(paced, 'p50'), '{:.2f}')} | {f(med(paced, 'p99'), '{:.2f}')} "
              f"| {f(med(sat, 'rps'))} | {f(med(sat, 'p99'), '{:.2f}')} "
              f"| {f(xmed(f'cpu10k|read-small|gateway-budgets-{config}|64'), '{:.2f}')} |")
    print()
    for config in ("local", "shared"):
        rows = runs.get(("paced-small", f"gateway-budgets-{config}", 64))
        print(f"- {config}, paced p99 of each run (ms): " + ", ".join(f(r["p99"], "{:.2f}") for r in rows))
    added = med(shared, "p99") - med(local, "p99")
    checks.append(("added p99 of shared budgets ≤ 0.2 ms (paced, 64 conns)", added <= 0.2,
                   f"{added:+.2f} ms"))
    print()


if len(sys.argv) > 3 and sys.argv[3] == "budgets":
    budgets_section()
    print("### Targets\n")
    print("| target | result | measured |")
    print("|---|---|---|")
    for name, ok, value in checks:
        print(f"| {name} | {'met' if ok else '**missed**'} | {value} |")
    sys.exit(0)
conns_seen = sorted({k[2] for k in runs if k[0].startswith("read-") and k[1] == "gateway"})

print("### Reads (`list/conversations`): throughput and latency, median of runs\n")
print("*floor* is `bench/floor`: the gateway's stack (axum, hyper, tokio, hyper-util's client) "
      "proxying the same call with none of the gateway's work.\n")
print("| body | conns | direct req/s | nginx req/s | floor req/s | gateway req/s "
      "| floor ÷ nginx | gateway ÷ nginx | gateway ÷ floor "
      "| p50 direct / nginx / gateway (ms) | p99 direct / nginx / gateway (ms) "
      "| p99 added by nginx / gateway (ms) | CPU s per 10k nginx / floor / gateway |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|---|---|")
for size in ("small", "large"):
    scenario = f"read-{size}"
    for c in conns_seen:
        d, n, fl, g = ((scenario, t, c) for t in ("direct", "nginx", "floor", "gateway"))

        def ratio(a, b):
            return med(a, "rps") / med(b, "rps") if med(a, "rps") and med(b, "rps") else None

        gn = ratio(g, n)
        cpu = " / ".join(f(xmed(f"cpu10k|{scenario}|{t}|{c}"), "{:.2f}")
                         for t in ("nginx", "floor", "gateway"))
        print(f"| {size} | {c} | {f(med(d, 'rps'))} | {f(med(n, 'rps'))} | {f(med(fl, 'rps'))} "
              f"| {f(med(g, 'rps'))} "
              f"| {f(ratio(fl, n), '{:.2f}')} | {f(gn, '{:.2f}')} | {f(ratio(g, fl), '{:.2f}')} "
              f"| {f(med(d, 'p50'), '{:.2f}')} / {f(med(n, 'p50'), '{:.2f}')} / {f(med(g, 'p50'), '{:.2f}')} "
              f"| {f(med(d, 'p99'), '{:.2f}')} / {f(med(n, 'p99'), '{:.2f}')} / {f(med(g, 'p99'), '{:.2f}')} "
              f"| {f(med(n, 'p99') - med(d, 'p99'), '{:+.2f}')} / {f(med(g, 'p99') - med(d, 'p99'), '{:+.2f}')} "
              f"| {cpu} |")
        if c == 64:
            checks.append((f"read throughput ≥ 0.9× nginx at 64 conns, {size} body",
                           gn is not None and gn >= 0.9, f"{f(gn, '{:.2f}')}× "
                           f"(the bare stack: {f(ratio(fl, n), '{:.2f}')}×)"))
print()

print("### Paced reads: 64 connections, each waiting 20 ms between requests (latency without queueing)\n")
print("| body | direct req/s | p50 direct / nginx / gateway (ms) | p99 direct / nginx / gateway (ms) "
      "| p99 added by nginx / gateway (ms) |")
print("|---|---:|---|---|---|")
for size in ("small", "large"):
    d, n, g = ((f"paced-{size}", t, 64) for t in ("direct", "nginx", "gateway"))
    if not runs.get(g):
        continue
    added = med(g, "p99") - med(d, "p99")
    print(f"| {size} | {f(med(d, 'rps'))} "
          f"| {f(med(d, 'p50'), '{:.2f}')} / {f(med(n, 'p50'), '{:.2f}')} / {f(med(g, 'p50'), '{:.2f}')} "
          f"| {f(med(d, 'p99'), '{:.2f}')} / {f(med(n, 'p99'), '{:.2f}')} / {f(med(g, 'p99'), '{:.2f}')} "
          f"| {f(med(n, 'p99') - med(d, 'p99'), '{:+.2f}')} / {added:+.2f} |")
    checks.append((f"added p99 ≤ 1 ms at 64 conns (paced), {size} body", added <= 1.0,
                   f"{added:+.2f} ms"))
    sat = med((f"read-{size}", "gateway", 64), "p99") - med((f"read-{size}", "direct", 64), "p99")
    checks.append((f"added p99 ≤ 1 ms at 64 conns (saturated, closed loop), {size} body",
                   sat <= 1.0, f"{sat:+.2f} ms"))
print()

print("### Writes (`send/message/in/conversation`), median of runs\n")
print("| case | conns | req/s | p50 (ms) | p99 (ms) | gateway CPU s per 10k |")
print("|---|---:|---:|---:|---:|---:|")
names = {
    ("write", "direct"): "direct upstream",
    ("write", "nginx"): "nginx proxy",
    ("write", "gateway"): "gateway, no Idempotency-Key",
    ("write-idem-new", "gateway"): "gateway, new Idempotency-Key each request",
    ("write-idem-replay", "gateway"): "gateway, one Idempotency-Key replayed",
}
for c in (16, 64):
    for (scenario, target), name in names.items():
        k = (scenario, target, c)
        if runs.get(k):
            print(f"| {name} | {c} | {f(med(k, 'rps'))} | {f(med(k, 'p50'), '{:.2f}')} "
                  f"| {f(med(k, 'p99'), '{:.2f}')} "
                  f"| {f(xmed(f'cpu10k|{scenario}|{target}|{c}'), '{:.2f}') if target != 'direct' else '–'} |")
print()

print("### Gateway configurations at 64 connections (restarted per configuration, runs interleaved)\n")
print("| configuration | small req/s | small p99 (ms) | large req/s | large p99 (ms) | CPU s per 10k (small) |")
print("|---|---:|---:|---:|---:|---:|")
labels = {
    "gateway-default": "default log level (info: one access line per request)",
    "gateway-warn": "`RUST_LOG=warn`",
    "gateway-seeded": "default, 10,000 more workspaces, keys and accounts",
}
for target, name in labels.items():
    s, l = (f"read-small", target, 64), (f"read-large", target, 64)
    if not runs.get(s):
        continue
    print(f"| {name} | {f(med(s, 'rps'))} | {f(med(s, 'p99'), '{:.2f}')} | {f(med(l, 'rps'))} "
          f"| {f(med(l, 'p99'), '{:.2f}')} | {f(xmed(f'cpu10k|read-small|{target}|64'), '{:.2f}')} |")
print()
# The spread of the single runs, so a difference between medians can be read against it.
for target, name in labels.items():
    for size in ("small", "large"):
        rows = runs.get((f"read-{size}", target, 64))
        if rows:
            print(f"- {name}, {size}: req/s of each run "
                  + ", ".join(f(r["rps"]) for r in rows))
for size in ("small", "large"):
    one = med((f"read-{size}", "gateway-default", 64), "rps")
    many = med((f"read-{size}", "gateway-seeded", 64), "rps")
    if one and many:
        change = many / one - 1
        checks.append((f"flat within 10 % from 1 to 10,000 tenants, {size} body",
                       abs(change) <= 0.10, f"{change:+.1%}"))
print()

budgets_section()

print("### Process\n")
print("| what | value |")
print("|---|---|")
startup_one, startup_many = xmed("startup|one"), xmed("startup|seeded")
rss = xmed("rss_peak_kb")
print(f"| start-up to first `GET /healthz` 200, SQLite, 1 tenant (median) | {f(startup_one, '{:.1f}')} ms |")
print(f"| same with 10,000 tenants | {f(startup_many, '{:.1f}')} ms |")
print(f"| RSS at rest, after the first call's key check (VmRSS) | {f(xmed('rss_rest_kb') and xmed('rss_rest_kb') / 1024, '{:.1f}')} MiB |")
most = max(conns_seen, default=0)
print(f"| peak RSS (VmHWM) after all read runs up to {most} connections | {f(rss and rss / 1024, '{:.1f}')} MiB |")
print(f"| RSS at the end of the read runs (VmRSS) | {f(xmed('rss_now_kb') and xmed('rss_now_kb') / 1024, '{:.1f}')} MiB |")
print(f"| threads | {f(xmed('threads'))} |")
print(f"| argon2 verifications during the read runs (one key) | {f(xmed('argon2_during_reads'))} |")
print(f"| argon2 verifications in the process after the reads, then after 5 new keys | "
      f"{f(xmed('argon2_total'))}, {f(xmed('argon2_after_cold'))} |")
print(f"| first request with a new key (argon2 + key lookup), median of 5 | {f(xmed('cold_first_ms'), '{:.1f}')} ms |")
print(f"| second request with that key | {f(xmed('cold_second_ms'), '{:.1f}')} ms |")
# The target is at 256 connections: a run that stopped below says nothing of it.
if rss and most >= 256:
    checks.append(("peak RSS ≤ 64 MiB at 256 conns", rss / 1024 <= 64, f"{rss / 1024:.1f} MiB"))
if startup_one:
    checks.append(("start-up ≤ 200 ms (SQLite)", startup_one <= 200, f"{startup_one:.1f} ms"))
print()

failures = [k for k in runs if bad(k)]
print("### Targets\n")
print("| target | result | measured |")
print("|---|---|---|")
for name, ok, value in checks:
    print(f"| {name} | {'met' if ok else '**missed**'} | {value} |")
print()
if failures:
    print("Runs with non-2xx answers or socket errors: " + ", ".join("|".join(map(str, k)) for k in failures))
else:
    print("Every run answered 2xx only, with no socket errors.")
