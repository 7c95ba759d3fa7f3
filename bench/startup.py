#!/usr/bin/env python3
"""Start-up time: spawn `crisp-gateway serve` and poll GET /healthz in a tight loop until it
answers 200. Prints the milliseconds from spawn to the first 200, then stops the process.

usage: startup.py PORT COMMAND...   (the environment is passed through)
"""

import http.client
import os
import signal
import subprocess
import sys
import time

port, command = int(sys.argv[1]), sys.argv[2:]
started = time.monotonic()
proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
ready = None
try:
    while time.monotonic() - started < 10:
        if proc.poll() is not None:
            sys.exit(f"the gateway exited with {proc.returncode} before it was ready")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            conn.request("GET", "/healthz")
            if conn.getresponse().status == 200:
                ready = time.monotonic() - started
                break
        except OSError:
            time.sleep(0.0005)
        finally:
            conn.close()
finally:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
if ready is None:
    sys.exit("the gateway was not ready within 10 s")
print(f"{ready * 1000:.1f}")
