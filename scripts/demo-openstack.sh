#!/usr/bin/env bash
# The demo in OpenStack mode: 2 clouds, each with a real Keystone, Neutron API and Open vSwitch
# in its namespace; a user of project p1 in cloud A expands Neutron network net1 into B with a
# Keystone token; B's agent replicates the project, network, subnet and ports in B's Keystone
# and Neutron; VMs (Neutron ports on br-int) ping across an IPsec-encrypted link (the WAN sees
# only ESP); everything is removed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
export INTERCLOUD_LAB=${INTERCLOUD_LAB:-osdemo}
PY=${PYTHON:-python3}
ic() { "$PY" -m intercloud "$@"; }
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
in_cloud() { local cloud=$1; shift; ic lab exec "$cloud" -- "$PY" -m intercloud "$@"; }
as_p1() { local cloud=$1; shift; ic lab exec --token p1 "$cloud" -- "$PY" -m intercloud "$@"; }
neutron() {  # what a cloud's Neutron holds that intercloud made or mirrored (REST, as the admin)
  "$PY" - "$1" <<'PY'
import os
import sys

from intercloud.lab.openstack.lab import OpenStackLab

lab = OpenStackLab(os.environ["INTERCLOUD_LAB"])
with lab.services(sys.argv[1]).api() as api:
    tok = api.admin_token()
    for n in api.list(tok, "networks"):
        project = api.get(tok, "projects", n["project_id"])["name"]
        for s in api.list(tok, "subnets", network_id=n["id"]):
            pools = ",".join(f"{x['start']}-{x['end']}" for x in s["allocation_pools"])
            print(f"  network {n['name']} project {project} {s['cidr']} gw {s['gateway_ip']} "
                  f"pool {pools} tags {sorted(n['tags'])}")
        for port in api.list(tok, "ports", network_id=n["id"]):
            ip = port["fixed_ips"][0]["ip_address"]
            print(f"    port {port['mac_address']} {ip} {port['device_owner']}")
PY
}

trap 'step "tearing down"; ic lab down' EXIT
ic lab down >/dev/null 2>&1 || true

step "lab up --openstack: 2 clouds, each with Keystone + Neutron + OVS (br-int, br-cloud), a charon, one agent"
ic lab up --openstack --clouds 2 --peer

step "a user of project p1 in cloud A (Keystone token) expands Neutron network net1 into B"
as_p1 A network list
as_p1 A expansion create net1 --peer B --wait 60

step "VMs: a1 on A's net1, b1 on B's replica (Neutron ports, plugged into br-int)"
ic lab vm add A a1 --network net1
ic lab vm add B b1 --replica-of A/net1
b1_ip=$("$PY" -c "from intercloud.lab.openstack.lab import OpenStackLab as L; import os; print(L(os.environ['INTERCLOUD_LAB']).state().vms['B/b1'].ip.split('/')[0])")

step "ping a1 -> b1 ($b1_ip) across the clouds, watching the WAN: only ESP (UDP 4500), no VXLAN"
ic lab exec wan -- timeout 4 tcpdump -i any -nn -c 6 'udp port 4500 or udp port 4789' 2>/dev/null &
sleep 1
ic lab exec A/a1 -- ping -c 3 -i 0.3 -W 2 "$b1_ip" | tail -2
wait

step "the link A -> B: encrypted, IKE established; the network's tunnel port is a kernel VXLAN"
in_cloud A link show B | grep -E -i "encrypt|state|ike|vm_mtu" || in_cloud A link show B
ic lab exec A -- ip -br link show type vxlan
ic lab exec A -- ip -br link show type veth | grep '^icp' || true

step "what B's Neutron holds (replicated project A.p1, a pool slice, a placeholder for a1)"
sleep 3
neutron B
step "what A's Neutron holds (its pool shrunk by B's slice, a placeholder for b1)"
neutron A

step "intercloud status (A, project p1)"
as_p1 A status

step "the tenant in B with A's credentials only: the unmodified openstack CLI (clouds A, A-in-B)"
osc() { ic lab openstack A -- "$@"; }
osc --os-cloud A intercloud expansion list
osc --os-cloud A-in-B network list
port_id=$(osc --os-cloud A-in-B port create --network net1 vm-b2 -f value -c id)
echo "  port $port_id made in B (project A.p1) through A's agent"
ic lab vm add B b2 --port "$port_id"
a1_ip=$("$PY" -c "from intercloud.lab.openstack.lab import OpenStackLab as L; import os; print(L(os.environ['INTERCLOUD_LAB']).state().vms['A/a1'].ip.split('/')[0])")
step "ping b2 (on the port the tenant made in B) -> a1 ($a1_ip)"
ic lab exec B/b2 -- ping -c 3 -i 0.3 -W 2 "$a1_ip" | tail -2
step "refused: a service type the agreement does not allow (image)"
ic lab exec --token p1 A -- "$PY" -c 'import os, httpx; e = os.environ
r = httpx.get(e["INTERCLOUD_URL"] + "/v1/proxy/B/image/v2/images", verify=e["INTERCLOUD_CACERT"], headers={"X-Auth-Token": e["INTERCLOUD_TOKEN"]})
print(" ", r.status_code, r.json()["error"]["message"])'
osc --os-cloud A-in-B port delete "$port_id"
ic lab vm rm B b2
