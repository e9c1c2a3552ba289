"""Request bodies. Pydantic checks types; the domain checks meaning (and names the field)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class PeerCreate(Strict):
    name: str
    federation_url: str
    underlay_endpoint: str
    key: str = Field(description="per-peer HMAC key; write-only, never returned")
    tls_ca: str | None = Field(
        default=None,
        max_length=16384,
        description="PEM certificates the peer's TLS certificate must chain to (its CA or its "
        "own certificate); unset: the system's CAs",
    )


class PeerUpdate(Strict):
    federation_url: str | None = None
    tls_ca: str | None = Field(
        default=None, max_length=16384, description="PEM to pin; null: unpin (system CAs)"
    )


class LinkCreate(Strict):
    peer: str
    local_endpoint: str
    remote_endpoint: str | None = None
    tunnel_type: str = "vxlan"
    mtu: int = 1500
    enabled: bool = True
    encrypted: bool = True
    psk: str | None = Field(default=None, description="pre-shared key; write-only")
    ike_policy: str | None = Field(default=None, description="IKE policy name; default if unset")
    ipsec_policy: str | None = Field(default=None, description="IPsec policy name")
    peer_tunnel_endpoint: str | None = Field(
        default=None,
        description="the peer's own address for the tunnel when it sits behind NAT "
        "(learned from the peer if unset)",
    )


class LinkUpdate(Strict):
    enabled: bool | None = None
    mtu: int | None = None
    encrypted: bool | None = None
    psk: str | None = Field(default=None, description="new pre-shared key; write-only")
    ike_policy: str | None = None
    ipsec_policy: str | None = None


class IkePolicyCreate(Strict):
    name: str
    version: int = 2
    encryption: list[str] | None = None
    integrity: list[str] | None = None
    prf: list[str] | None = None
    dh_groups: list[str] | None = None
    lifetime: int = 14400


class IpsecPolicyCreate(Strict):
    name: str
    encryption: list[str] | None = None
    integrity: list[str] | None = None
    pfs_group: str | None = "ecp256"
    lifetime: int = 3600
    mode: str = "transport"


class AgreementCreate(Strict):
    peer: str
    projects: list[str] = Field(default_factory=list)
    peer_projects: list[str] = Field(default_factory=list)
    max_expansions_per_project: int = 10
    default_rate_mbit: float | None = None


class AgreementUpdate(Strict):
    projects: list[str] | None = None
    peer_projects: list[str] | None = None
    max_expansions_per_project: int | None = None
    default_rate_mbit: float | None = None


class ExpansionCreate(Strict):
    network: str
    peers: list[str]
    vni: int | None = None
    rate_mbit: float | None = Field(default=None, description="egress limit to each peer")


class ExpansionUpdate(Strict):
    rate_mbit: float | None = None


class ReplicaPut(Strict):
    project: str
    network: str
    cidr: str
    members: list[str] | None = None  # every cloud the network spans, the origin included
    # OpenStack: {"gateway", "pools", "ports"} (domain/validation.addressing)
    addressing: dict | None = None


class AdjacencyPut(Strict):
    exclude: list[int] = Field(default_factory=list)


class DirectPut(Strict):
    direct: list[str]


class RelaysPut(Strict):
    relays: list  # [[from, to], ...] (service/mesh.set_relays)


class PortsPut(Strict):
    ports: list  # [[mac, ip], ...] (domain/validation.port_list)


class VniAgree(Strict):
    vni: int | None = None
    exclude: list[int] = Field(default_factory=list)
