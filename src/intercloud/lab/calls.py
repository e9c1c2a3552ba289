"""Talking to a running lab's agents: admin/user API calls made from inside a cloud's gateway
namespace (errors mapped by `errors.from_answer`), and peering two clouds."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from intercloud import errors
from intercloud.lab import nshttp
from intercloud.lab.nsexec import LabError
from intercloud.lab.records import PROJECTS, LabRecords
from intercloud.lab.state import Peering


class LabCalls(LabRecords):
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
            host=c.api_host,
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
