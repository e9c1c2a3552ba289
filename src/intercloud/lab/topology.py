"""The lab: a federation of N clouds in network namespaces on one host.

    <name>-wan          the underlay router (ip_forward=1); interface wan-<c> per cloud
    <name>-gw-<c>       cloud <C>'s gateway: eth0 198.18.<i>.2/24, tenant bridges tn-net1/tn-net2,
                        and its agent (python -m intercloud agent) listening on :8700
    <name>-<c>-<vm>     a "VM": eth0 joined by a veth (v<c><vm>) to a bridge in its gateway
    <name>-nat-<c>      for a cloud behind NAT: its NAT router (see underlay.py)

With encryption (the default) each gateway also runs its own charon (strongSwan), with its own
config, VICI socket and /run, and the agents encrypt every link with IPsec.

Every namespace starts with `<name>-`, so `down()` finds them all even without lab.json.

`Lab` is its parts together: records.py (names, lab.json), agents.py, build.py (up, down),
calls.py (API calls, peering), vms.py and, here, commands run in it and its status.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
from collections.abc import Sequence
from typing import Any

from intercloud.lab import namespaces, nsexec
from intercloud.lab.agentconf import AGENT_PORT
from intercloud.lab.build import DEFAULT_LANES, LabBuild, lane_dir
from intercloud.lab.nsexec import LabError
from intercloud.lab.records import NETWORKS, PROJECTS
from intercloud.lab.vms import LabVms

__all__ = ["AGENT_PORT", "DEFAULT_LANES", "NETWORKS", "PROJECTS", "Lab", "lane_dir"]


class Lab(LabBuild, LabVms):
    """A federation of clouds in network namespaces; its record is <state_dir>/lab.json."""

    def namespace(self, target: str) -> str:
        """`A` (the cloud's gateway; with several, the site), `A:gw1` (one of its gateways),
        `A/vm1` (a VM) or `wan` (the underlay router)."""
        if target == "wan":
            return self.wan_ns
        if ":" in target:
            cloud, _, gateway = target.partition(":")
            gateways = self.cloud(cloud).gateways
            if gateway not in gateways:
                raise LabError(f"cloud {cloud.upper()} has no gateway {gateway!r}")
            return gateways[gateway].ns
        cloud, _, vm = target.partition("/")
        c = self.cloud(cloud)
        if not vm:
            return c.ns
        if f"{c.name}/{vm}" not in self.state().vms:
            raise LabError(f"no VM {c.name}/{vm}")
        return self.vm_ns(c.name, vm)

    def _env(self, target: str, token: str | None) -> dict[str, str]:
        """The environment of a command: in a gateway, INTERCLOUD_URL/_TOKEN/_CACERT for its
        agent."""
        env = dict(os.environ)
        if target == "wan" or "/" in target:
            return env
        c = self.cloud(target.partition(":")[0])
        host = "127.0.0.1" if ":" in target else c.api_host  # one gateway's own agent
        env["INTERCLOUD_URL"] = f"{'https' if c.ca else 'http'}://{host}:{AGENT_PORT}"
        env.pop("INTERCLOUD_CACERT", None)
        if c.ca:
            env["INTERCLOUD_CACERT"] = c.ca
        env.pop("INTERCLOUD_TOKEN", None)
        tok = self.token(c.name, token)
        if tok:
            env["INTERCLOUD_TOKEN"] = tok
        return env

    def exec(
        self,
        target: str,
        argv: Sequence[str],
        *,
        token: str | None = "admin",
        capture: bool = True,
        check: bool = False,
        timeout: float | None = None,
        input: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run argv in a cloud's gateway (with INTERCLOUD_URL/_TOKEN/_CACERT set) or a VM."""
        ns = self.namespace(target)
        return subprocess.run(
            nsexec.exec_argv(ns, argv),
            capture_output=capture,
            text=True,
            check=check,
            timeout=timeout,
            input=input,
            env=self._env(target, token),
        )

    def status(self) -> dict[str, Any]:
        present = namespaces.list_namespaces(self.name + "-")
        out: dict[str, Any] = {
            "name": self.name,
            "state_dir": str(self.state_dir),
            "up": self.exists(),
            "namespaces": present,
            "clouds": [],
            "vms": [],
            "peerings": [],
        }
        if not out["up"]:
            return out
        st = self.state()
        for letter, c in st.clouds.items():
            alive = self._agent_alive(c)
            out["clouds"].append(
                {
                    "name": letter,
                    "namespace": c.ns,
                    "present": c.ns in present,
                    "ip": c.ip,
                    "url": c.url,
                    "ca": c.ca,
                    "pid": c.pid,
                    "alive": alive,
                    "healthy": alive and self.health(letter),
                    "gateways": self.gateways(letter) if c.gateways else [],
                }
            )
        for key, vm in st.vms.items():
            out["vms"].append(
                {"target": key, **dataclasses.asdict(vm), "present": vm.ns in present}
            )
        out["peerings"] = [p.clouds for p in st.peerings]
        return out
