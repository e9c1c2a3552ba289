#!/usr/bin/env bash
# The demo: 3 clouds in namespaces (C behind a NAT router), peered over IPsec links; a network
# of cloud A expanded into B and C; pings between VMs of all three on one subnet;
# `intercloud status`; teardown.
set -euo pipefail
cd "$(dirname "$0")/.."
export INTERCLOUD_LAB=${INTERCLOUD_LAB:-demo}
PY=${PYTHON:-python3}
ic() { "$PY" -m intercloud "$@"; }
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
in_cloud() { local cloud=$1; shift; ic lab exec "$cloud" -- "$PY" -m intercloud "$@"; }
as_p1() { local cloud=$1; shift; ic lab exec --token p1 "$cloud" -- "$PY" -m intercloud "$@"; }

trap 'step "tearing down"; ic lab down' EXIT
ic lab down >/dev/null 2>&1 || true

step "lab up: 3 clouds (A, B, C; C behind NAT), a WAN router, one agent + one charon per cloud"
ic lab up --clouds 3 --nat C

# Public address of each cloud, and its own (C sits behind NAT: 198.19.3.2 inside)
ip_of() { case $1 in A) echo 198.18.1.2;; B) echo 198.18.2.2;; C) echo 198.18.3.2;; esac; }
own_ip() { case $1 in C) echo 198.19.3.2;; *) ip_of "$1";; esac; }
# Behind NAT the agent is reached at its own address, through the IPsec tunnel
api_ip() { own_ip "$1"; }
peer_pair() {  # what two cloud administrators do to agree on a peering
  local a=$1 b=$2 key psk
  key=$("$PY" -c 'import secrets; print(secrets.token_hex(16))')
  psk=$("$PY" -c 'import secrets; print(secrets.token_hex(24))')
  for pair in "$a $b" "$b $a"; do
    set -- $pair
    # over HTTPS, pinned to the peer's own CA (its administrator hands it over with the key)
    in_cloud "$1" peer create "$2" --url "https://$(api_ip "$2"):8700" \
      --endpoint "$(ip_of "$2")" --key "$key" --ca-file "$(ic lab ca "$2")" >/dev/null
    extra=()
    [ "$(own_ip "$2")" != "$(ip_of "$2")" ] && extra=(--peer-tunnel-endpoint "$(own_ip "$2")")
    in_cloud "$1" link create "$2" --local "$(own_ip "$1")" --psk "$psk" "${extra[@]}" >/dev/null
    in_cloud "$1" agreement create "$2" --project p1 --peer-project p1 >/dev/null
  done
  echo "peered $a <-> $b (IPsec, pre-shared key; federation over HTTPS, CA pinned)"
}
step "admins peer A with B and A with C (peer, encrypted link, agreement on both sides)"
peer_pair A B
peer_pair A C

step "a user of project p1 in cloud A expands net1 (10.10.0.0/24) into B and C"
as_p1 A network list
as_p1 A expansion create net1 --peer B --peer C --wait 30

step "VMs: a1 in A on net1, b1 in B and c1 in C on the replicas of A's net1"
ic lab vm add A a1 --ip 10.10.0.1/24 --network net1 >/dev/null
ic lab vm add B b1 --ip 10.10.0.2/24 --replica-of A/net1 >/dev/null
ic lab vm add C c1 --ip 10.10.0.3/24 --replica-of A/net1 >/dev/null
echo "a1=10.10.0.1 (A)  b1=10.10.0.2 (B)  c1=10.10.0.3 (C)"

step "pings on one subnet across three clouds"
for pair in "A/a1 10.10.0.2" "A/a1 10.10.0.3" "B/b1 10.10.0.3" "C/c1 10.10.0.1"; do
  set -- $pair
  echo "-- $1 -> $2"
  ic lab exec "$1" -- ping -c 3 -i 0.2 -W 2 "$2" | tail -2
done
echo "-- ARP in a1 (MACs learned across clouds):"
ic lab exec A/a1 -- ip neigh show dev eth0

step "links as A sees them (IPsec via charon's kernel-libipsec; C through NAT-T)"
in_cloud A link list
step "intercloud status (A, admin)"
in_cloud A status
step "intercloud status (A, project p1)"
as_p1 A status
step "intercloud replica list (B, admin)"
in_cloud B replica list
