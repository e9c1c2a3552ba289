"""The agent's tables. Desired state is written by the API; observed status by the reconciler."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    pass


class Peer(Base):
    __tablename__ = "peers"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(63), unique=True)
    federation_url: Mapped[str] = mapped_column(String(255))
    underlay_endpoint: Mapped[str] = mapped_column(String(45))
    # Needed in clear to sign requests; never returned by the API, never logged.
    key: Mapped[str] = mapped_column(String(255))
    # PEM the peer's TLS certificate must chain to (its CA or its own certificate); None: the
    # system's CAs.
    tls_ca: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    link: Mapped[Link | None] = relationship(back_populates="peer", uselist=False)
    agreement: Mapped[Agreement | None] = relationship(back_populates="peer", uselist=False)


class IkePolicyRow(Base):
    __tablename__ = "ike_policies"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(63), unique=True)
    version: Mapped[int] = mapped_column(Integer, default=2)
    encryption: Mapped[list[str]] = mapped_column(JSON)
    integrity: Mapped[list[str]] = mapped_column(JSON)
    prf: Mapped[list[str]] = mapped_column(JSON)
    dh_groups: Mapped[list[str]] = mapped_column(JSON)
    lifetime: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class IpsecPolicyRow(Base):
    __tablename__ = "ipsec_policies"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(63), unique=True)
    encryption: Mapped[list[str]] = mapped_column(JSON)
    integrity: Mapped[list[str]] = mapped_column(JSON)
    pfs_group: Mapped[str | None] = mapped_column(String(32), nullable=True)
    lifetime: Mapped[int] = mapped_column(Integer)
    mode: Mapped[str] = mapped_column(String(16), default="transport")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Link(Base):
    __tablename__ = "links"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    peer_id: Mapped[int] = mapped_column(ForeignKey("peers.id"), unique=True)
    local_endpoint: Mapped[str] = mapped_column(String(45))
    remote_endpoint: Mapped[str] = mapped_column(String(45))
    tunnel_type: Mapped[str] = mapped_column(String(16), default="vxlan")
    mtu: Mapped[int] = mapped_column(Integer, default=1500)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    encrypted: Mapped[bool] = mapped_column(Boolean, default=True)
    # Write-only: needed in clear by the IPsec driver; never returned, never logged.
    psk: Mapped[str | None] = mapped_column(String(255), nullable=True)
    ike_policy_id: Mapped[int | None] = mapped_column(ForeignKey("ike_policies.id"), nullable=True)
    ipsec_policy_id: Mapped[int | None] = mapped_column(
        ForeignKey("ipsec_policies.id"), nullable=True
    )
    # Observed: the peer's own address for our tunnel (differs from remote_endpoint behind NAT)
    peer_tunnel_endpoint: Mapped[str | None] = mapped_column(String(45), nullable=True)
    ipsec_status: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    state: Mapped[str] = mapped_column(String(16), default="unknown")
    reason: Mapped[str] = mapped_column(String(1024), default="")
    checked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    peer: Mapped[Peer] = relationship(back_populates="link")
    ike_policy: Mapped[IkePolicyRow | None] = relationship()
    ipsec_policy: Mapped[IpsecPolicyRow | None] = relationship()


class Agreement(Base):
    __tablename__ = "agreements"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    peer_id: Mapped[int] = mapped_column(ForeignKey("peers.id"), unique=True)
    projects: Mapped[list[str]] = mapped_column(JSON, default=list)
    peer_projects: Mapped[list[str]] = mapped_column(JSON, default=list)
    max_expansions_per_project: Mapped[int] = mapped_column(Integer, default=10)
    # Egress limit toward the peer for each expansion that sets none itself (None: no limit)
    default_rate_mbit: Mapped[float | None] = mapped_column(Float, nullable=True)
    # Keystone service types the tenant API proxy may reach in the peer's cloud (api/proxy.py)
    proxy_services: Mapped[list[str]] = mapped_column(JSON, default=lambda: ["compute", "network"])
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    peer: Mapped[Peer] = relationship(back_populates="agreement")


class ReplicatedProject(Base):
    """A peer's project, replicated here on its first expansion."""

    __tablename__ = "replicated_projects"
    __table_args__ = (UniqueConstraint("peer_id", "origin_name"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    peer_id: Mapped[int] = mapped_column(ForeignKey("peers.id"))
    origin_name: Mapped[str] = mapped_column(String(63))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Expansion(Base):
    __tablename__ = "expansions"
    __table_args__ = (UniqueConstraint("project", "network"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    uid: Mapped[str] = mapped_column(String(36), unique=True)
    project: Mapped[str] = mapped_column(String(63))
    network: Mapped[str] = mapped_column(String(63))
    cidr: Mapped[str] = mapped_column(String(64))
    requested_vni: Mapped[int | None] = mapped_column(Integer, nullable=True)
    rate_mbit: Mapped[float | None] = mapped_column(Float, nullable=True)
    deleting: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # the path between every two members as the reconciler last applied it (domain/relay.py)
    paths: Mapped[list[dict] | None] = mapped_column(JSON, nullable=True)

    targets: Mapped[list[Target]] = relationship(
        back_populates="expansion", cascade="all, delete-orphan", order_by="Target.id"
    )


class Target(Base):
    """One peer an expansion reaches, with its agreed VNI and observed status."""

    __tablename__ = "expansion_targets"
    __table_args__ = (UniqueConstraint("expansion_id", "peer_id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    expansion_id: Mapped[int] = mapped_column(ForeignKey("expansions.id"))
    peer_id: Mapped[int] = mapped_column(ForeignKey("peers.id"))
    vni: Mapped[int | None] = mapped_column(Integer, nullable=True)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    reason: Mapped[str] = mapped_column(String(1024), default="")
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # the network's members we last told this peer (None: not yet), and the members the peer
    # says it reaches directly over a tunnel of its own (so we do not relay between them)
    members_sent: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    direct: Mapped[list[str]] = mapped_column(JSON, default=list)
    # OpenStack: the addresses this peer may hand out in the network ([[first, last], ...],
    # carved from the origin's pool; None: not carved), and the addressing last sent to it
    pool: Mapped[list[list[str]] | None] = mapped_column(JSON, nullable=True)
    addressing_sent: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    # OpenStack: [[mac, ip], ...] of the ports in the peer's replica (its VMs), as it reports
    peer_ports: Mapped[list[list[str]] | None] = mapped_column(JSON, nullable=True)
    # the pairs of members this peer confirmed it relays for us ([[from, to], ...]; None: none)
    relays_sent: Mapped[list[list[str]] | None] = mapped_column(JSON, nullable=True)

    expansion: Mapped[Expansion] = relationship(back_populates="targets")
    peer: Mapped[Peer] = relationship()


class Replica(Base):
    """The network this agent hosts for a peer's expansion."""

    __tablename__ = "replicas"
    __table_args__ = (UniqueConstraint("peer_id", "uid"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    uid: Mapped[str] = mapped_column(String(36))
    peer_id: Mapped[int] = mapped_column(ForeignKey("peers.id"))
    project_id: Mapped[int] = mapped_column(ForeignKey("replicated_projects.id"))
    network: Mapped[str] = mapped_column(String(63))
    cidr: Mapped[str] = mapped_column(String(64))
    vni: Mapped[int | None] = mapped_column(Integer, nullable=True)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    reason: Mapped[str] = mapped_column(String(1024), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # every cloud the network spans, the origin included (told by the origin)
    members: Mapped[list[str]] = mapped_column(JSON, default=list)
    # the members we last told the origin we reach directly (None: not yet)
    direct_sent: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    # OpenStack: {"gateway", "pools", "ports"} told by the origin (None: a plain replica)
    addressing: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    # the replica's own ports ([[mac, ip], ...]) we last told the origin (None: not yet)
    ports_sent: Mapped[list[list[str]] | None] = mapped_column(JSON, nullable=True)
    # the pairs of members the origin asked us to relay between ([[from, to], ...])
    relays: Mapped[list[list[str]] | None] = mapped_column(JSON, nullable=True)

    peer: Mapped[Peer] = relationship()
    project: Mapped[ReplicatedProject] = relationship()
    adjacencies: Mapped[list[Adjacency]] = relationship(
        back_populates="replica", cascade="all, delete-orphan"
    )


class Adjacency(Base):
    """A direct tunnel of a replica network to another member of it (not the origin): the
    mesh part of a federation, with its own VNI agreed between the two members."""

    __tablename__ = "adjacencies"
    __table_args__ = (UniqueConstraint("replica_id", "peer_id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    replica_id: Mapped[int] = mapped_column(ForeignKey("replicas.id", ondelete="CASCADE"))
    peer_id: Mapped[int] = mapped_column(ForeignKey("peers.id"))
    vni: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    replica: Mapped[Replica] = relationship(back_populates="adjacencies")
    peer: Mapped[Peer] = relationship()


class VniAllocation(Base):
    """VNIs are unique per agent (one UDP port, one namespace): the primary key enforces it."""

    __tablename__ = "vni_allocations"
    vni: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    owner: Mapped[str] = mapped_column(String(64), unique=True)


class Nonce(Base):
    """Federation request nonces seen recently (replay protection survives restarts)."""

    __tablename__ = "federation_nonces"
    peer_id: Mapped[int] = mapped_column(ForeignKey("peers.id"), primary_key=True)
    nonce: Mapped[str] = mapped_column(String(64), primary_key=True)
    seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class GatewayLease(Base):
    """Gateway HA (store/leases.py): one row per cloud, who is active. Times are the
    database's clock; `holder_pid` is the holder's database session (pg_backend_pid)."""

    __tablename__ = "gateway_leases"
    # a new token is then a key update, which waits for the write fence's lock (store/fence.py)
    __table_args__ = (Index("gateway_leases_cloud_token", "cloud", "token", unique=True),)
    cloud: Mapped[str] = mapped_column(String(63), primary_key=True)
    holder: Mapped[str | None] = mapped_column(String(63), nullable=True)
    token: Mapped[int] = mapped_column(BigInteger, default=0)
    holder_pid: Mapped[int | None] = mapped_column(Integer, nullable=True)
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    renewed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    since: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    last_failover_ms: Mapped[int | None] = mapped_column(Integer, nullable=True)


class GatewaySeen(Base):
    """Every gateway of a cloud and its role as it last said (for status)."""

    __tablename__ = "gateways"
    cloud: Mapped[str] = mapped_column(String(63), primary_key=True)
    name: Mapped[str] = mapped_column(String(63), primary_key=True)
    role: Mapped[str] = mapped_column(String(8))
    seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class GatewayMacs(Base):
    """Gateway HA (store/leases.py): the remote MACs the active learned on its tunnel ports,
    by bridge name (`{"icb1": ["02:..", ...]}`), written by the holder of lease `token` only;
    a gateway that takes over announces them on its tenant side."""

    __tablename__ = "gateway_macs"
    cloud: Mapped[str] = mapped_column(String(63), primary_key=True)
    token: Mapped[int] = mapped_column(BigInteger)
    macs: Mapped[dict] = mapped_column(JSON)
    saved_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
