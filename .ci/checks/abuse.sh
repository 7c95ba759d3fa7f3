#!/usr/bin/env bash
# Hostile traffic against a real `crisp-gateway serve` on SQLite with the sandbox as Crisp, on
# loopback only and bounded in time (about two minutes): connection floods, refusal floods, a
# wrong-secret flood, idempotent replays by narrower keys, and kill -9 during keyed writes.
# The phases and what each asserts are described at the top of abuse.py.
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --quiet --bin crisp-gateway
# 10,500 client sockets plus the gateway's own: raise this shell's soft limit for both.
ulimit -n "$(ulimit -Hn)"
timeout 600 python3 .ci/checks/abuse.py "$PWD/target/debug/crisp-gateway"
