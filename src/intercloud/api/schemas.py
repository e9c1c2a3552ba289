"""Request bodies. Pydantic checks types; the domain checks meaning (and names the field)."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from intercloud.domain import validation
from intercloud.errors import Invalid


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
    proxy_services: list[str] | None = Field(
        default=None,
        description="service types the tenant API proxy may reach (default: network, compute)",
    )


class AgreementUpdate(Strict):
    projects: list[str] | None = None
    peer_projects: list[str] | None = None
    max_expansions_per_project: int | None = None
    default_rate_mbit: float | None = None
    proxy_services: list[str] | None = None


class ExpansionCreate(Strict):
    network: str
    peers: list[str]
    vni: int | None = None
    rate_mbit: float | None = Field(default=None, description="egress limit to each peer")


class ExpansionUpdate(Strict):
    rate_mbit: float | None = None


# -- federation bodies: what a peer may send, bounded in every dimension ------------------------
# (the service layer then checks meaning: members, CIDRs, addresses inside them, VNIs free)


def _valid_name(value: str) -> str:
    try:
        return validation.name(value)
    except Invalid as exc:  # pydantic turns a ValueError into a 422 naming the field
        raise ValueError(exc.message.partition(": ")[2]) from None


Name = Annotated[str, Field(max_length=63), AfterValidator(_valid_name)]
Vni = Annotated[int, Field(ge=validation.VNI_MIN, le=validation.VNI_MAX)]
Text45 = Annotated[str, Field(max_length=45)]  # an address (the longest IPv6 text form)
MAX_MEMBERS = 256  # clouds one network spans (service/replicas.py)
MAX_EXCLUDE = 65536  # VNIs a caller says it uses (1,000 expansions: ~1,000)


class Addressing(Strict):
    """OpenStack: the network's gateway, the peer's pool slice and the other clouds' ports
    (each checked against the CIDR by domain/validation.addressing)."""

    gateway: Text45 | None = None
    pools: list[Annotated[list[Text45], Field(min_length=2, max_length=2)]] = Field(
        default_factory=list, max_length=64
    )
    ports: list[Annotated[list[Text45], Field(min_length=2, max_length=2)]] = Field(
        default_factory=list, max_length=validation.MAX_PORTS
    )


class ReplicaPut(Strict):
    project: Name
    network: Name
    cidr: str = Field(max_length=64)
    # every cloud the network spans, the origin included
    members: list[Name] | None = Field(default=None, max_length=MAX_MEMBERS)
    addressing: Addressing | None = None


class ReplicaConfirm(ReplicaPut):
    uid: str = Field(max_length=64)  # checked as a replica id by service/replicas.asked


class Confirmations(Strict):
    replicas: list[ReplicaConfirm] = Field(min_length=1, max_length=validation.MAX_CONFIRMATIONS)


class AdjacencyPut(Strict):
    origin: Name  # the network's origin cloud: uids are unique per origin only
    exclude: list[Vni] = Field(default_factory=list, max_length=MAX_EXCLUDE)
    # the caller's VNI range: the VNI agreed lies in both agents' ranges (unset: ours only)
    vni_min: Vni | None = None
    vni_max: Vni | None = None


class DirectPut(Strict):
    direct: list[Name] = Field(max_length=MAX_MEMBERS)


class RelaysPut(Strict):
    # [[from, to], ...] (service/adjacencies.set_relays)
    relays: list[Annotated[list[Name], Field(min_length=2, max_length=2)]] = Field(max_length=1024)


class PortsPut(Strict):
    # [[mac, ip], ...] (domain/validation.port_list)
    ports: list[Annotated[list[Text45], Field(min_length=2, max_length=2)]] = Field(
        max_length=validation.MAX_PORTS
    )


class VniAgree(Strict):
    vni: Vni | None = None
    exclude: list[Vni] = Field(default_factory=list, max_length=MAX_EXCLUDE)
    vni_min: Vni | None = None  # the caller's VNI range (AdjacencyPut)
    vni_max: Vni | None = None


# -- the tenant API proxy: the origin's envelope of one call (domain/proxy.py checks meaning) ---
Pair = Annotated[list[Annotated[str, Field(max_length=1024)]], Field(min_length=2, max_length=2)]


class ProxyEnvelope(Strict):
    project: Name
    service_type: str = Field(max_length=32)
    method: str = Field(max_length=8)
    path: str = Field(max_length=1024)
    query: list[Pair] = Field(default_factory=list, max_length=64)
    headers: list[Pair] = Field(default_factory=list, max_length=16)
    body: str = Field(default="", max_length=(512 * 1024 + 2) // 3 * 4)  # base64
    max_answer: int = Field(default=8 * 1024 * 1024, ge=1024, le=64 * 1024 * 1024)
