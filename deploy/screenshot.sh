#!/usr/bin/env bash
# Renders the admin status page to docs/status-page.png with headless Chromium: one edge node
# on conf/local.json (ports moved to free ones, probes every 500 ms) and its three demo
# origins, web-2 slow (outside the latency band) and web-backup answering 503 (down).
# Uses target/release binaries when both are built, else target/debug (under $CARGO_TARGET_DIR
# when set); BIN_DIR=... overrides.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
out=${OUT:-$root/docs/status-page.png}

if [ -z "${BIN_DIR:-}" ]; then
  target=${CARGO_TARGET_DIR:-target}
  BIN_DIR=$target/debug
  [ -x "$target/release/portico" ] && [ -x "$target/release/portico-origin" ] && BIN_DIR=$target/release
fi
for b in portico portico-origin; do
  [ -x "$BIN_DIR/$b" ] || { echo "no $BIN_DIR/$b: build it with  cargo build --release -p portico -p portico-origin" >&2; exit 1; }
done
BIN_DIR=$(cd "$BIN_DIR" && pwd)
chromium=$(command -v chromium || true)
[ -n "$chromium" ] || { echo "install chromium: apt-get install -y chromium" >&2; exit 1; }
command -v curl >/dev/null || { echo "install curl: apt-get install -y curl" >&2; exit 1; }

tmp=$(mktemp -d)
mkdir "$tmp/conf"
pids=()
cleanup() {
  trap - INT TERM EXIT
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup INT TERM EXIT

# Sets $port to a loopback port nothing listens on and not handed out before in this run
# (no command substitution: the list of ports handed out must survive the call).
taken=" "
free_port() {
  while :; do
    port=$((20000 + RANDOM % 40000))
    case "$taken" in *" $port "*) continue ;; esac
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then taken="$taken$port "; return; fi
  done
}
wait_for() { # WHAT SECONDS COMMAND...
  local what=$1 secs=$2; shift 2
  for _ in $(seq 1 $((secs * 10))); do "$@" && return 0; sleep 0.1; done
  echo "timed out waiting for $what" >&2; return 1
}

free_port; w1=$port; free_port; w2=$port; free_port; wb=$port
free_port; listen=127.0.0.1:$port; free_port; admin=127.0.0.1:$port
sed -e "s/127.0.0.1:9001/127.0.0.1:$w1/; s/127.0.0.1:9002/127.0.0.1:$w2/; s/127.0.0.1:9003/127.0.0.1:$wb/" \
    -e 's/"interval_ms": 2000, "timeout_ms": 1000/"interval_ms": 500, "timeout_ms": 400/' \
    conf/local.json > "$tmp/conf/local.json"

"$BIN_DIR/portico-origin" --name web-1 --listen "127.0.0.1:$w1" --delay-ms 0 >/dev/null 2>&1 & pids+=($!)
"$BIN_DIR/portico-origin" --name web-2 --listen "127.0.0.1:$w2" --delay-ms 120 >/dev/null 2>&1 & pids+=($!)
"$BIN_DIR/portico-origin" --name web-backup --listen "127.0.0.1:$wb" --fault status:503 >/dev/null 2>&1 & pids+=($!)
# From $tmp, so the page names its config conf/local.json as the demo's does.
(cd "$tmp" && exec "$BIN_DIR/portico" --config conf/local.json --listen "$listen" \
  --admin-listen "$admin" >"$tmp/portico.log" 2>&1) & pids+=($!)

status() { curl -fsS --max-time 2 "http://$admin/status" 2>/dev/null; }
settled() { # both healthy origins measured, web-backup marked down
  local s; s=$(status) || return 1
  [ "$(grep -c '"latency_ms": [0-9]' <<<"$s")" -ge 2 ] && grep -q '"healthy": false' <<<"$s"
}
wait_for "http://$admin/status" 15 status >/dev/null || { cat "$tmp/portico.log" >&2; exit 1; }
wait_for "the probes to settle" 20 settled || { status >&2; exit 1; }
page=$(curl -fsS "http://$admin/" || true)
grep -q '<title>Portico status</title>' <<<"$page" \
  || { echo "http://$admin/ does not serve the status page: is $BIN_DIR/portico stale?" >&2; exit 1; }

mkdir -p "$(dirname "$out")"
rm -f "$out"
timeout 120 "$chromium" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
  --disable-background-networking --disable-component-update --disable-sync \
  --user-data-dir="$tmp/chromium" --hide-scrollbars --window-size=1280,800 \
  --virtual-time-budget=3000 --screenshot="$out" "http://$admin/" >"$tmp/chromium.log" 2>&1 \
  || { cat "$tmp/chromium.log" >&2; exit 1; }
[ -s "$out" ] || { echo "chromium wrote no screenshot" >&2; cat "$tmp/chromium.log" >&2; exit 1; }
echo "wrote ${out#"$root"/}"
