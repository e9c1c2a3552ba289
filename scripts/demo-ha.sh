#!/usr/bin/env bash
# The HA demo: 2 clouds with two gateways each (one active, sharing the cloud's address, a
# tenant segment and a PostgreSQL), an encrypted link, A's net1 expanded into B; a VM of A
# pings a VM of B at 20/s while A's active gateway is killed (kill -9 of its agent and
# charons), then the link of the new one's host is cut; the longest gap of each; teardown.
set -euo pipefail
cd "$(dirname "$0")/.."
export INTERCLOUD_LAB=${INTERCLOUD_LAB:-demoha}
PY=${PYTHON:-python3}
ic() { "$PY" -m intercloud "$@"; }
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
in_cloud() { local cloud=$1; shift; ic lab exec "$cloud" -- "$PY" -m intercloud "$@"; }
as_p1() { local cloud=$1; shift; ic lab exec --token p1 "$cloud" -- "$PY" -m intercloud "$@"; }

trap 'step "tearing down"; ic lab down' EXIT
ic lab down >/dev/null 2>&1 || true

step "lab up --ha: clouds A and B, two gateways each (agents, charons), a PostgreSQL per cloud"
ic lab up --clouds 2 --ha --peer

step "a user of project p1 in cloud A expands net1 into B; VMs a1 (A) and b1 (B)"
as_p1 A expansion create net1 --peer B --wait 30 >/dev/null
ic lab vm add A a1 --ip 10.10.0.1/24 --network net1 >/dev/null
ic lab vm add B b1 --ip 10.10.0.2/24 --replica-of A/net1 >/dev/null
ic lab exec A/a1 -- ping -c 3 -i 0.2 -W 2 10.10.0.2 | tail -1
ic lab gateway list A

failover() {  # fail A's active gateway $1 (kill, cut) under a 20/s ping; print the longest gap
  local how=$1 log
  log=$(mktemp)
  ic lab exec A/a1 -- ping -D -i 0.05 -W 1 10.10.0.2 >"$log" 2>&1 &
  local ping=$!
  sleep 2
  ic lab gateway fail A --how "$how"
  sleep 6
  kill -INT "$ping"; wait "$ping" || true
  "$PY" - "$log" "$how" <<'PY'
import re, sys
times = [float(m.group(1)) for line in open(sys.argv[1]) if (m := re.match(r"^\[(\d+\.\d+)\] \d+ bytes from", line))]
gap = max((b - a for a, b in zip(times, times[1:])), default=0.0)
print(f"failover ({sys.argv[2]}): {len(times)} replies, longest gap {gap:.3f} s")
PY
  rm -f "$log"
  ic lab gateway list A
  ic lab gateway restore A
}

step "kill -9 of A's active gateway (agent and charons) under a 20/s ping from a1 to b1"
failover kill
step "every link of A's (new) active gateway host cut, under the same ping"
failover cut

step "intercloud status in A (the High availability and Gateways tables)"
in_cloud A status | sed -n '/High availability/,$p'
step "the role changes, one log line each"
grep -h "intercloud.ha: gateway" /var/lib/intercloud-lab/$INTERCLOUD_LAB/A/gw*/agent.log | cut -c1-140
