"""Who may call what through the tenant API proxy (api/proxy.py, api/federation_proxy.py).

At the origin: a project may reach a peer's cloud once it has an expansion into that peer, and
only the service types of our agreement with it. At the peer: the origin's project is acted
for only in its replica (`<origin>.<project>`, which exists only while one of the project's
networks is expanded here), and only with the service types of the peer's own agreement."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from intercloud.domain import proxy
from intercloud.errors import Forbidden
from intercloud.federation.transport import PeerRef
from intercloud.store import models as m


def _agreement(s: Session, peer: str) -> m.Agreement:
    row = s.scalar(select(m.Peer).where(m.Peer.name == peer))
    if row is None or row.agreement is None:
        raise Forbidden(f"peer: no agreement with a peer named {peer!r}", field="peer")
    return row.agreement


def origin_scope(s: Session, project: str, peer: str, service_type: str) -> PeerRef:
    """The peer our `project`'s call may go to (else Forbidden saying why)."""
    agreement = _agreement(s, peer)
    expanded = s.scalar(
        select(m.Target.id)
        .join(m.Expansion)
        .where(
            m.Expansion.project == project,
            m.Expansion.deleting.is_(False),
            m.Target.peer_id == agreement.peer_id,
        )
        .limit(1)
    )
    if expanded is None:
        raise Forbidden(
            f"peer: project {project!r} has no expansion into {peer!r}: expand a network "
            "there first",
            field="peer",
        )
    proxy.service_type(service_type, list(agreement.proxy_services or []))
    p = agreement.peer
    return PeerRef(p.name, p.federation_url, p.key)


def replica_scope(s: Session, peer: str, project: str, service_type: str) -> str:
    """The project here that `peer`'s `project` acts in (else Forbidden saying why)."""
    agreement = _agreement(s, peer)
    proxy.service_type(service_type, list(agreement.proxy_services or []))
    name = s.scalar(
        select(m.ReplicatedProject.name)
        .join(m.Replica, m.Replica.project_id == m.ReplicatedProject.id)
        .where(
            m.ReplicatedProject.peer_id == agreement.peer_id,
            m.ReplicatedProject.origin_name == project,
        )
        .limit(1)
    )
    if name is None:
        raise Forbidden(
            f"project: {peer}'s project {project!r} has no replica here", field="project"
        )
    return name
