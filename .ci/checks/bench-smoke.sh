#!/usr/bin/env bash
# A few seconds of wrk load at 16 connections on the debug build (already built by `cargo test`):
# fails if the gateway answers anything but 2xx or drops a connection under load.
set -euo pipefail
cd "$(dirname "$0")/../.."
bench/run --smoke
