#!/bin/sh
# Announces this node's anycast address while its Portico node is healthy, withdraws it when
# not: GET /healthz on the admin listener, then `birdc enable|disable portico_anycast`.
#
#   healthcheck.sh          run forever: check every INTERVAL seconds
#   healthcheck.sh --once   check once and apply the result (cron, tests)
#
# /healthz answers 200 while serving and 503 as soon as SIGTERM starts the drain, so a
# stopping node is withdrawn within INTERVAL while it still serves (keep node.drain_ms above
# INTERVAL + the time BGP takes to converge, say 5000 ms). A dead node (connection refused,
# timeout) is withdrawn the same way; a dead machine is BGP's and BFD's job.
# Withdraw after FALL bad checks in a row, announce again after RISE good ones (no flapping).
# BIRD's actual state is read each time, so a restarted BIRD is put right at the next check.
set -u

HEALTHZ_URL=${PORTICO_HEALTHZ_URL:-http://127.0.0.1:9901/healthz}
PROTOCOL=${BIRD_PROTOCOL:-portico_anycast}
BIRDC=${BIRDC:-birdc}
BIRD_SOCKET=${BIRD_SOCKET:-}     # birdc's -s: BIRD's control socket, if not the default
INTERVAL=${INTERVAL:-1}
TIMEOUT=${TIMEOUT:-1}
RISE=${RISE:-3}
FALL=${FALL:-1}

log() { echo "portico-anycast: $*" >&2; }

bird_ctl() {
  if [ -n "$BIRD_SOCKET" ]; then "$BIRDC" -s "$BIRD_SOCKET" "$@"; else "$BIRDC" "$@"; fi
}

# 0 when /healthz answers 2xx within TIMEOUT seconds.
healthy() {
  curl -fsS -o /dev/null --max-time "$TIMEOUT" "$HEALTHZ_URL" 2>/dev/null
}

# "up", "down" or "unknown": the State column of `birdc show protocols NAME`.
bird_state() {
  bird_ctl -r show protocols "$PROTOCOL" 2>/dev/null |
    awk -v p="$PROTOCOL" '$1 == p { print ($4 == "up" ? "up" : "down"); found = 1 }
                          END { if (!found) print "unknown" }'
}

# Makes BIRD's state match $1 (up or down).
apply() {
  actual=$(bird_state)
  [ "$actual" = "$1" ] && return 0
  if [ "$1" = up ]; then cmd=enable; else cmd=disable; fi
  if bird_ctl "$cmd" "$PROTOCOL" >/dev/null; then
    log "$HEALTHZ_URL: $cmd $PROTOCOL (was $actual)"
  else
    log "birdc $cmd $PROTOCOL failed"
    return 1
  fi
}

if [ "${1:-}" = --once ]; then
  if healthy; then apply up; else apply down; fi
  exit $?
fi

want=down good=0 bad=0
while :; do
  if healthy; then good=$((good + 1)) bad=0; else bad=$((bad + 1)) good=0; fi
  [ "$good" -ge "$RISE" ] && want=up
  [ "$bad" -ge "$FALL" ] && want=down
  apply "$want" || true
  sleep "$INTERVAL"
done
