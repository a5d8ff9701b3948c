#!/usr/bin/env bash
# One edge node on conf/local.json with three demo origins; Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=${BIN_DIR:-target/demo}
pids=()
cleanup() {
  trap - INT TERM EXIT
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  echo "stopped"
}
trap cleanup INT TERM EXIT

"$bin/portico-origin" --name web-1 --listen 127.0.0.1:9001 --control 127.0.0.1:9101 --delay-ms 0 >/dev/null & pids+=($!)
"$bin/portico-origin" --name web-2 --listen 127.0.0.1:9002 --control 127.0.0.1:9102 --delay-ms 120 >/dev/null & pids+=($!)
"$bin/portico-origin" --name web-backup --listen 127.0.0.1:9003 --control 127.0.0.1:9103 --delay-ms 20 >/dev/null & pids+=($!)
"$bin/portico" --config conf/local.json & pids+=($!)

for _ in $(seq 1 100); do
  (exec 3<>/dev/tcp/127.0.0.1/8080) 2>/dev/null && break
  sleep 0.1
done
cat <<MSG

Portico is running (Ctrl-C stops it and the demo origins).
  proxy    http://127.0.0.1:8080/
  metrics  http://127.0.0.1:9901/metrics
  status   http://127.0.0.1:9901/status
Try:
  for i in \$(seq 20); do curl -s http://127.0.0.1:8080/; done | sort | uniq -c
web-1 (0 ms) takes the traffic; web-2 (120 ms) is outside the 50 ms latency band and
web-backup is priority 2. Make web-1 fail and watch /status and the answers move:
  curl -X PUT -d refuse http://127.0.0.1:9101/fault     # also: hang, status:503, slow:300
  curl -X PUT -d none   http://127.0.0.1:9101/fault     # recover

MSG
wait
