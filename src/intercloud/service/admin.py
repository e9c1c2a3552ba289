"""Admin use cases: peers, links, agreements."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from intercloud import tls
from intercloud.domain import proxy
from intercloud.domain import validation as v
from intercloud.errors import Conflict, Invalid, NotFound
from intercloud.service import policies, views
from intercloud.store import models as m


def get_peer(s: Session, name: str, field: str = "peer") -> m.Peer:
    peer = s.scalar(select(m.Peer).where(m.Peer.name == name))
    if peer is None:
        raise NotFound(f"{field}: unknown peer {name!r}", field=field)
    return peer


def create_peer(
    s: Session,
    local_name: str,
    name: str,
    federation_url: str,
    underlay_endpoint: str,
    key: str,
    *,
    tls_ca: str | None = None,
    plain_http: bool = False,
) -> dict[str, Any]:
    v.name(name, "name")
    if name == local_name:
        raise Invalid(f"name: {name!r} is this agent's own name", field="name")
    url = _federation_url(federation_url, plain_http)
    endpoint = v.ip_address(underlay_endpoint, "underlay_endpoint")
    v.secret(key, "key")
    pem = None if tls_ca is None else tls.check_pem(tls_ca, "tls_ca")
    if s.scalar(select(m.Peer).where(m.Peer.name == name)):
        raise Conflict(f"name: peer {name!r} already exists", field="name")
    peer = m.Peer(name=name, federation_url=url, underlay_endpoint=endpoint, key=key, tls_ca=pem)
    s.add(peer)
    s.flush()
    return views.peer(peer)


def _federation_url(value: object, plain_http: bool) -> str:
    url = v.url(value, "federation_url")
    if not plain_http and not url.startswith("https://"):
        raise Invalid(
            "federation_url: must be https:// (plain http only when this agent runs with "
            "agent.plain_http = true)",
            field="federation_url",
        )
    return url


def update_peer(
    s: Session, name: str, body: dict[str, Any], *, plain_http: bool = False
) -> dict[str, Any]:
    """Change a peer's federation URL or its pinned TLS CA (None: unpin)."""
    peer = get_peer(s, name, "name")
    if body.get("federation_url") is not None:
        peer.federation_url = _federation_url(body["federation_url"], plain_http)
    if "tls_ca" in body:
        peer.tls_ca = None if body["tls_ca"] is None else tls.check_pem(body["tls_ca"], "tls_ca")
    s.flush()
    return views.peer(peer)


def list_peers(s: Session) -> list[dict[str, Any]]:
    return [views.peer(p) for p in s.scalars(select(m.Peer).order_by(m.Peer.name))]


def delete_peer(s: Session, name: str) -> None:
    peer = get_peer(s, name, "name")
    if peer.link is not None or peer.agreement is not None:
        raise Conflict(
            f"name: peer {name!r} still has a link or agreement; delete them first", field="name"
        )
    in_use = s.scalars(
        select(func.count()).select_from(m.Target).where(m.Target.peer_id == peer.id)
    ).one()
    in_use += s.scalars(
        select(func.count()).select_from(m.Replica).where(m.Replica.peer_id == peer.id)
    ).one()
    if in_use:
        raise Conflict(
            f"name: peer {name!r} is used by {in_use} expansion(s) or replica(s)", field="name"
        )
    s.query(m.Nonce).filter(m.Nonce.peer_id == peer.id).delete()
    s.query(m.ReplicatedProject).filter(m.ReplicatedProject.peer_id == peer.id).delete()
    s.delete(peer)


def create_link(
    s: Session, supported: tuple[str, ...], ipsec_available: bool, body: dict[str, Any]
) -> dict[str, Any]:
    p = get_peer(s, v.name(body.get("peer"), "peer"))
    local = v.ip_address(body.get("local_endpoint"), "local_endpoint")
    remote_raw = body.get("remote_endpoint")
    remote = v.ip_address(remote_raw, "remote_endpoint") if remote_raw else p.underlay_endpoint
    tunnel_type = v.tunnel_type(body.get("tunnel_type", "vxlan"), supported)
    mtu = v.mtu(body.get("mtu", 1500))
    enabled = bool(body.get("enabled", True))
    encrypted = body.get("encrypted", True)
    inner = body.get("peer_tunnel_endpoint")
    inner = v.ip_address(inner, "peer_tunnel_endpoint") if inner else None
    if p.link is not None:
        raise Conflict(f"peer: a link to {p.name!r} already exists", field="peer")
    link = m.Link(
        peer=p,
        local_endpoint=local,
        remote_endpoint=remote,
        tunnel_type=tunnel_type,
        mtu=mtu,
        enabled=enabled,
        encrypted=bool(encrypted),
        peer_tunnel_endpoint=inner,
        state="unknown" if enabled else "disabled",
    )
    _apply_crypto(s, link, body, ipsec_available, creating=True)
    s.add(link)
    s.flush()
    return views.link(link)


def _apply_crypto(
    s: Session, link: m.Link, body: dict[str, Any], ipsec_available: bool, creating: bool
) -> None:
    """Encryption settings of a link: PSK (write-only) and the two policies by name."""
    if body.get("psk") is not None:
        link.psk = v.secret(body["psk"], "psk")
    for key, getter, attr in (
        ("ike_policy", policies.get_ike, "ike_policy"),
        ("ipsec_policy", policies.get_ipsec, "ipsec_policy"),
    ):
        if key in body:
            setattr(link, attr, None if body[key] is None else getter(s, body[key], key))
    if link.encrypted:
        if not ipsec_available:
            raise Invalid(
                "encrypted: this agent has no IPsec driver (ipsec.driver = none); "
                "create the link with encrypted=false or configure strongSwan",
                field="encrypted",
            )
        if not link.psk:
            raise Invalid(
                "psk: an encrypted link needs a pre-shared key (16+ characters)", field="psk"
            )
    elif creating and (link.psk or link.ike_policy or link.ipsec_policy):
        raise Invalid(
            "encrypted: psk and policies only apply to an encrypted link", field="encrypted"
        )


def get_link(s: Session, peer: str) -> m.Link:
    p = get_peer(s, peer)
    if p.link is None:
        raise NotFound(f"peer: no link to {peer!r}", field="peer")
    return p.link


def list_links(s: Session) -> list[dict[str, Any]]:
    links = s.scalars(select(m.Link).join(m.Peer).order_by(m.Peer.name))
    return [views.link(lk) for lk in links]


def update_link(
    s: Session, peer: str, ipsec_available: bool, body: dict[str, Any]
) -> dict[str, Any]:
    link = get_link(s, peer)
    if body.get("mtu") is not None:
        link.mtu = v.mtu(body["mtu"])
    if body.get("encrypted") is not None:
        link.encrypted = bool(body["encrypted"])
    _apply_crypto(
        s,
        link,
        {k: val for k, val in body.items() if k in ("psk",) and val is not None}
        | {k: body[k] for k in ("ike_policy", "ipsec_policy") if k in body},
        ipsec_available,
        creating=False,
    )
    if body.get("enabled") is not None:
        link.enabled = bool(body["enabled"])
        if not link.enabled:
            link.state, link.reason = "disabled", "disabled by the administrator"
        elif link.state == "disabled":
            link.state, link.reason = "unknown", ""
    s.flush()
    return views.link(link)


def delete_link(s: Session, peer: str) -> None:
    link = get_link(s, peer)
    users = s.scalars(
        select(func.count()).select_from(m.Target).where(m.Target.peer_id == link.peer_id)
    ).one()
    users += s.scalars(
        select(func.count()).select_from(m.Replica).where(m.Replica.peer_id == link.peer_id)
    ).one()
    if users:
        raise Conflict(
            f"peer: the link to {peer!r} carries {users} expansion(s) or replica(s); "
            "delete them first",
            field="peer",
        )
    s.delete(link)


def _projects(value: object, field: str) -> list[str]:
    if not isinstance(value, list):
        raise Invalid(f"{field}: must be a list of project names", field=field)
    out = []
    for item in value:
        out.append("*" if item == "*" else v.name(item, field))
    return sorted(set(out))


def _limit(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 100000:
        raise Invalid(
            "max_expansions_per_project: must be an integer from 0 to 100000",
            field="max_expansions_per_project",
        )
    return value


def rate(value: object, field: str) -> float | None:
    """An egress limit in Mbit/s, or None for no limit."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.1 <= value <= 1e5:
        raise Invalid(
            f"{field}: must be a number of Mbit/s from 0.1 to 100000, or null", field=field
        )
    return float(value)


def create_agreement(
    s: Session,
    peer: str,
    projects: list[str],
    peer_projects: list[str],
    max_expansions_per_project: int,
    default_rate_mbit: float | None = None,
    proxy_services: list[str] | None = None,
) -> dict[str, Any]:
    p = get_peer(s, v.name(peer, "peer"))
    services = proxy.service_types(
        list(proxy.DEFAULT_SERVICES) if proxy_services is None else proxy_services
    )
    ours = _projects(projects, "projects")
    theirs = _projects(peer_projects, "peer_projects")
    limit = _limit(max_expansions_per_project)
    default_rate = rate(default_rate_mbit, "default_rate_mbit")
    if p.agreement is not None:
        raise Conflict(f"peer: an agreement with {peer!r} already exists", field="peer")
    a = m.Agreement(
        peer=p,
        projects=ours,
        peer_projects=theirs,
        max_expansions_per_project=limit,
        default_rate_mbit=default_rate,
        proxy_services=services,
    )
    s.add(a)
    s.flush()
    return views.agreement(a)


def get_agreement(s: Session, peer: str) -> m.Agreement:
    p = get_peer(s, peer)
    if p.agreement is None:
        raise NotFound(f"peer: no agreement with {peer!r}", field="peer")
    return p.agreement


def list_agreements(s: Session) -> list[dict[str, Any]]:
    rows = s.scalars(select(m.Agreement).join(m.Peer).order_by(m.Peer.name))
    return [views.agreement(a) for a in rows]


def update_agreement(s: Session, peer: str, changes: dict[str, Any]) -> dict[str, Any]:
    a = get_agreement(s, peer)
    if changes.get("projects") is not None:
        a.projects = _projects(changes["projects"], "projects")
    if changes.get("peer_projects") is not None:
        a.peer_projects = _projects(changes["peer_projects"], "peer_projects")
    if changes.get("max_expansions_per_project") is not None:
        a.max_expansions_per_project = _limit(changes["max_expansions_per_project"])
    if "default_rate_mbit" in changes:
        a.default_rate_mbit = rate(changes["default_rate_mbit"], "default_rate_mbit")
    if changes.get("proxy_services") is not None:
        a.proxy_services = proxy.service_types(changes["proxy_services"])
    s.flush()
    return views.agreement(a)


def delete_agreement(s: Session, peer: str) -> None:
    s.delete(get_agreement(s, peer))


def allows(project_list: list[str], project: str) -> bool:
    return "*" in project_list or project in project_list
