"""The lab: a whole federation of clouds in network namespaces on one host (demo, tests,
benchmarks). `Lab` builds and drives it; `intercloud lab ...` is its command line.

    topology.py     Lab: its parts together; commands run in it, its status
    records.py      names and lab.json (typed in state.py), read and changed under a lock
    build.py        up, down, a cloud's gateway, config and record; a user-run agent
    agents.py       the agents: start, stop, health, log
    calls.py        API calls to the agents, peering
    vms.py          "VMs" on tenant bridges and replicas
    underlay.py     the WAN router and NAT routers
    agentconf.py    agent.toml written from intercloud.config's dataclasses
    charon.py       a charon per namespace (and lane)
    ovs_instance.py an Open vSwitch per namespace
    pki.py          each cloud's CA and its agent's certificate
    namespaces.py   namespaces, veths, bridges, addresses (ip)
    nsexec.py       commands and our programs inside a namespace, one way
    nshttp.py       HTTP from inside a namespace (programs/http_request.py)
    processes.py    the daemons the lab starts: pids, stop, exit status
    programs/       stdlib-only programs run inside namespaces
    openstack/      real Keystone and Neutron (venvs, services, api) and the OpenStack lab
    cli.py          `intercloud lab ...`
"""

from intercloud.lab.nsexec import LabError
from intercloud.lab.topology import Lab

__all__ = ["Lab", "LabError"]
