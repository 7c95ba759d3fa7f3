# Sourced by the checks in .ci/checks/: helpers for starting processes on loopback.

# A free TCP port on 127.0.0.1.
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# Polls until the URL answers (any HTTP status), for at most ~20 s; fails if the process died.
wait_for() {
  local url=$1 pid=$2
  for _ in $(seq 1 200); do
    if curl -s -o /dev/null "$url"; then return 0; fi
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "process $pid exited before $url answered" >&2
      return 1
    fi
    sleep 0.1
  done
  echo "timed out waiting for $url" >&2
  return 1
}
