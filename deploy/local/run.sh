#!/usr/bin/env bash
# One edge node on conf/local.json with three demo origins; Ctrl-C stops everything.
# A throwaway CA and server certificate are made at start in a temporary directory (removed
# at exit, never in the repository) for the TLS listener on 127.0.0.1:8443.
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=${BIN_DIR:-${CARGO_TARGET_DIR:-target}/demo}
pids=()
tls=$(mktemp -d "${TMPDIR:-/tmp}/portico-run-single.XXXXXX")
cleanup() {
  trap - INT TERM EXIT
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$tls"
  echo "stopped"
}
trap cleanup INT TERM EXIT

# conf/local.json plus node.tls_listen and the demo certificate (ECDSA P-256, for localhost,
# 127.0.0.1 and ::1), written with the CA into $tls.
"$bin/portico-demo-certs" "$tls" --config conf/local.json --tls-listen 127.0.0.1:8443 \
  --out "$tls/local.json" >/dev/null

"$bin/portico-origin" --name web-1 --listen 127.0.0.1:9001 --control 127.0.0.1:9101 --delay-ms 0 >/dev/null & pids+=($!)
"$bin/portico-origin" --name web-2 --listen 127.0.0.1:9002 --control 127.0.0.1:9102 --delay-ms 120 >/dev/null & pids+=($!)
"$bin/portico-origin" --name web-backup --listen 127.0.0.1:9003 --control 127.0.0.1:9103 --delay-ms 20 >/dev/null & pids+=($!)
"$bin/portico" --config "$tls/local.json" & pids+=($!)

for _ in $(seq 1 100); do
  (exec 3<>/dev/tcp/127.0.0.1/8080) 2>/dev/null && break
  sleep 0.1
done
# The TLS listener opens with the plain one; a bare TCP probe of it would log a failed
# handshake, so check it with a real TLS request when curl is there.
if command -v curl >/dev/null 2>&1; then
  for _ in $(seq 1 50); do
    curl -s -o /dev/null --cacert "$tls/ca.pem" https://localhost:8443/ && break
    sleep 0.1
  done
fi
cat <<MSG

Portico is running (Ctrl-C stops it and the demo origins).
  proxy    http://127.0.0.1:8080/
  https    https://localhost:8443/  (h2 and HTTP/1.1; throwaway CA $tls/ca.pem, removed at exit)
  metrics  http://127.0.0.1:9901/metrics
  status   http://127.0.0.1:9901/status
  config   $tls/local.json (conf/local.json with the TLS listener; kill -HUP re-reads it)
Try:
  for i in \$(seq 20); do curl -s http://127.0.0.1:8080/; done | sort | uniq -c
  curl --cacert $tls/ca.pem https://localhost:8443/
  curl --http2 --cacert $tls/ca.pem -sI https://localhost:8443/     # HTTP/2 200
web-1 (0 ms) takes the traffic; web-2 (120 ms) is outside the 50 ms latency band and
web-backup is priority 2. Make web-1 fail and watch /status and the answers move:
  curl -X PUT -d refuse http://127.0.0.1:9101/fault     # also: hang, status:503, slow:300
  curl -X PUT -d none   http://127.0.0.1:9101/fault     # recover

MSG
wait
