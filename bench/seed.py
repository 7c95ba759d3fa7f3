#!/usr/bin/env python3
"""Adds N workspaces, each with one key and one Crisp account, straight into a SQLite database.

Used by bench/run to check that the gateway's cost does not grow with the number of tenants.
The rows are shaped like the CLI's, but their key hashes and sealed Crisp keys are dummies:
only the benchmark's own key (made with `key create`, a real argon2 hash) and its own account
(made with `account add`, really sealed) are ever used, and the gateway never opens another
workspace's rows. Making 10,000 real argon2 hashes would take minutes and test nothing more.

usage: seed.py SOURCE_DATABASE DESTINATION_DATABASE N   (the source is copied first, WAL included)
"""

import sqlite3
import sys
import time

source, path, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
now = int(time.time())
db = sqlite3.connect(path)
with sqlite3.connect(source) as original:
    original.backup(db)
with db:
    db.executemany(
        "insert into workspace (workspace_id, name, created_at) values (?, ?, ?)",
        ((f"ws_seed{i:06d}", f"seed-{i:06d}", now) for i in range(count)),
    )
    db.executemany(
        "insert into api_key (api_key_id, workspace_id, name, secret_hash, created_at)"
        " values (?, ?, ?, ?, ?)",
        (
            (f"seedkey{i:09d}", f"ws_seed{i:06d}", "seed", "$argon2id$dummy", now)
            for i in range(count)
        ),
    )
    db.executemany(
        "insert into crisp_account (crisp_account_id, workspace_id, label, identifier,"
        " sealed_key, website_id, tier, is_default, created_at)"
        " values (?, ?, 'main', ?, 'v1:dummy', ?, 'website', 1, ?)",
        (
            (f"acc_seed{i:06d}", f"ws_seed{i:06d}", f"id-{i}", f"site-{i}", now)
            for i in range(count)
        ),
    )
counts = [
    db.execute(f"select count(*) from {t}").fetchone()[0]
    for t in ("workspace", "api_key", "crisp_account")
]
print("workspaces=%d keys=%d accounts=%d" % tuple(counts))
