"""Operations on a running lab: admin/user API calls made from inside a cloud's gateway
namespace, peering two clouds, and "VMs" (namespaces joined to a tenant bridge or a replica).
Mixed into `intercloud.lab.topology.Lab`."""

from __future__ import annotations

import ipaddress
import re
import secrets
import time
from collections.abc import Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from intercloud import errors
from intercloud.lab import namespaces, nshttp
from intercloud.lab.nsexec import LabError
from intercloud.lab.state import CloudRecord, LabState, Peering, VmRecord

PROJECTS = ("p1", "p2")
_VM_RE = re.compile(r"^[a-z][a-z0-9-]{0,11}$")


class LabOps:
    if TYPE_CHECKING:  # provided by Lab

        def cloud(self, cloud: str) -> CloudRecord: ...
        def ip(self, cloud: str) -> str: ...
        def token(self, cloud: str, which: str | None = "admin") -> str | None: ...
        def state(self) -> LabState: ...
        def vm_ns(self, cloud: str, vm: str) -> str: ...
        def _edit(self) -> AbstractContextManager[LabState]: ...

    # --- API calls (made from inside the cloud's gateway namespace) -------------------------------

    def api_raw(
        self,
        cloud: str,
        method: str,
        path: str,
        body: Any = None,
        token: str | None = "admin",
        timeout: float = 30.0,
    ) -> tuple[int, Any]:
        """(status, parsed JSON body); raises LabError only if the agent does not answer."""
        c = self.cloud(cloud)
        status, data, err = nshttp.http(
            c.ns,
            method,
            path,
            body=body,
            token=self.token(cloud, token),
            timeout=timeout,
            cafile=c.ca,
        )
        if status == 0:
            raise LabError(f"agent {c.name} did not answer {method.upper()} {path}: {err}")
        return status, data

    def api(
        self,
        cloud: str,
        method: str,
        path: str,
        body: Any = None,
        token: str | None = "admin",
        timeout: float = 30.0,
    ) -> Any:
        """Parsed JSON (None for an empty body); an HTTP error raises the matching
        IntercloudError subclass (NotFound, Conflict, ...) with `.status` and `.body`."""
        status, data = self.api_raw(cloud, method, path, body, token, timeout)
        if status < 400:
            return data
        message, field = errors.said(data)
        exc = errors.from_answer(
            status,
            f"{cloud.upper()}: {method.upper()} {path} -> {status}: {message or data}",
            field=field,
        )
        exc.body = data  # type: ignore[attr-defined]
        raise exc

    def peer(
        self,
        a: str,
        b: str,
        projects: Sequence[str] = PROJECTS,
        max_expansions_per_project: int = 10,
    ) -> None:
        """Peer, link and agreement on both sides, with a fresh shared key."""
        a, b = self.cloud(a).name, self.cloud(b).name
        if a == b:
            raise LabError(f"cannot peer cloud {a} with itself")
        key, psk = secrets.token_hex(16), secrets.token_hex(24)
        encrypt = self.state().encrypt
        for x, y in ((a, b), (b, a)):
            peer = {
                "name": y,
                "federation_url": self._federation_url(x, y),
                "underlay_endpoint": self.ip(y),
                "key": key,
            }
            ca = self.cloud(y).ca
            if ca:  # x pins y's own CA
                peer["tls_ca"] = Path(ca).read_text()
            self.api(x, "POST", "/v1/peers", peer)
            link: dict[str, Any] = {"peer": y, "local_endpoint": self.cloud(x).local_ip}
            if self.cloud(y).local_ip != self.ip(y):  # y is behind NAT: its own address
                link["peer_tunnel_endpoint"] = self.cloud(y).local_ip
            if encrypt:
                link["psk"] = psk
            else:
                link["encrypted"] = False
            self.api(x, "POST", "/v1/links", link)
            self.api(
                x,
                "POST",
                "/v1/agreements",
                {
                    "peer": y,
                    "projects": list(projects),
                    "peer_projects": list(projects),
                    "max_expansions_per_project": max_expansions_per_project,
                },
            )
        with self._edit() as st:
            st.peerings.append(Peering([a, b], list(projects), key, psk))

    def _federation_url(self, x: str, y: str) -> str:
        """Where x reaches y's agent. A cloud behind NAT is reached at its own address through
        the IPsec tunnel: its replies go back through the tunnel, not through the NAT router,
        so a connection made to its public address would never see them."""
        c = self.cloud(y)
        if c.local_ip != c.ip and self.state().encrypt:
            return c.url.replace(c.ip, c.local_ip)  # its certificate names both
        return c.url

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
            bridge = self.replica_bridge(letter, replica_of, timeout=timeout)  # type: ignore[arg-type]
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

    def replica_bridge(
        self, cloud: str, replica_of: str | Sequence[str], timeout: float = 30.0
    ) -> str:
        """Wait until `cloud` hosts a replica of peer/network whose bridge exists; its name."""
        parts = replica_of.split("/") if isinstance(replica_of, str) else list(replica_of)
        if len(parts) not in (2, 3):
            raise LabError(
                f"replica_of must be PEER/NETWORK or PEER/PROJECT/NETWORK (got {replica_of!r})"
            )
        peer, network, project = parts[0].upper(), parts[-1], parts[1] if len(parts) == 3 else None
        gw = self.cloud(cloud).ns
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
