"""A running lab's "VMs": namespaces whose eth0 is joined to a cloud's tenant bridge or to the
bridge of a replica it hosts."""

from __future__ import annotations

import ipaddress
import re
import time
from collections.abc import Sequence
from typing import Any

from intercloud.lab import namespaces
from intercloud.lab.calls import LabCalls
from intercloud.lab.nsexec import LabError
from intercloud.lab.state import VmRecord

_VM_RE = re.compile(r"^[a-z][a-z0-9-]{0,11}$")


class LabVms(LabCalls):
    # --- VMs --------------------------------------------------------------------------------------

    def add_vm(
        self,
        cloud: str,
        name: str,
        ip_cidr: str,
        *,
        network: str | None = None,
        replica_of: str | Sequence[str] | None = None,
        mac: str | None = None,
        mtu: int | None = None,
        timeout: float = 30.0,
    ) -> VmRecord:
        """A namespace with eth0 = ip_cidr, joined to local network `network` or to the replica
        this cloud hosts for `replica_of` = ("A", "net1") or "A/net1"."""
        c = self.cloud(cloud)
        letter, gw = c.name, c.ns
        if not _VM_RE.match(name):
            raise LabError(
                f"VM name must be 1-12 lowercase letters, digits or '-', starting "
                f"with a letter (got {name!r})"
            )
        if (network is None) == (replica_of is None):
            raise LabError("give exactly one of network or replica_of")
        try:
            iface = ipaddress.ip_interface(ip_cidr)
        except ValueError:
            raise LabError(f"invalid address {ip_cidr!r} (expected e.g. 10.10.0.11/24)") from None
        key = f"{letter}/{name}"
        if key in self.state().vms:
            raise LabError(f"VM {key} already exists")
        if network is not None:
            bridge = f"tn-{network}"
            if not namespaces.link_exists(gw, bridge):
                raise LabError(f"cloud {letter} has no network {network!r} (no bridge {bridge})")
        else:
            if c.gateways:  # a replica lives on the gateway that built it (docs/ha.md)
                gw = self._replica_gateway(letter)
            bridge = self.replica_bridge(letter, replica_of, timeout=timeout, ns=gw)  # type: ignore[arg-type]
        ns, veth = self.vm_ns(letter, name), f"v{letter.lower()}{name}"
        try:
            namespaces.add_namespace(ns)
            namespaces.add_veth(ns, "eth0", gw, veth)
            namespaces.set_up(ns, "eth0", mac=mac, mtu=mtu)
            namespaces.add_address(ns, "eth0", str(iface))
            namespaces.set_up(gw, veth, master=bridge)
        except BaseException:
            namespaces.delete_namespace(ns)
            raise
        vm = VmRecord(
            cloud=letter,
            name=name,
            ns=ns,
            ip=str(iface),
            veth=veth,
            bridge=bridge,
            network=network,
            replica_of=replica_of
            if replica_of is None or isinstance(replica_of, str)
            else "/".join(replica_of),
        )
        with self._edit() as st:
            st.vms[key] = vm
        return vm

    def _replica_gateway(self, cloud: str) -> str:
        c = self.cloud(cloud)
        for g in c.gateways.values():
            out = namespaces.ip("-4", "-o", "addr", "show", ns=g.ns, check=False).stdout
            if f" {c.ip}/" in out:
                return g.ns
        raise LabError(f"cloud {c.name} has no active gateway to host a VM on a replica")

    def replica_bridge(
        self,
        cloud: str,
        replica_of: str | Sequence[str],
        timeout: float = 30.0,
        ns: str | None = None,
    ) -> str:
        """Wait until `cloud` hosts a replica of peer/network whose bridge exists; its name."""
        parts = replica_of.split("/") if isinstance(replica_of, str) else list(replica_of)
        if len(parts) not in (2, 3):
            raise LabError(
                f"replica_of must be PEER/NETWORK or PEER/PROJECT/NETWORK (got {replica_of!r})"
            )
        peer, network, project = parts[0].upper(), parts[-1], parts[1] if len(parts) == 3 else None
        gw = ns or self.cloud(cloud).ns
        deadline = time.monotonic() + timeout
        seen: Any = None
        while True:
            status, data = self.api_raw(cloud, "GET", "/v1/replicas")
            seen = data
            items = data.get("items", []) if isinstance(data, dict) else data
            for r in items if status == 200 and isinstance(items, list) else []:
                if (
                    r.get("peer") == peer
                    and r.get("network") == network
                    and project in (None, r.get("origin_project"))
                    and r.get("bridge")
                    and namespaces.link_exists(gw, r["bridge"])
                ):
                    return r["bridge"]
            if time.monotonic() >= deadline:
                raise LabError(
                    f"cloud {cloud.upper()} hosts no replica of {'/'.join(parts)} "
                    f"with a bridge after {timeout:.0f}s (replicas: {seen})"
                )
            time.sleep(0.5)

    def remove_vm(self, cloud: str, name: str) -> None:
        letter = self.cloud(cloud).name
        key, ns = f"{letter}/{name}", self.vm_ns(letter, name)
        if key not in self.state().vms and not namespaces.exists(ns):
            raise LabError(f"no VM {key}")
        namespaces.delete_namespace(ns)
        with self._edit() as st:
            st.vms.pop(key, None)
