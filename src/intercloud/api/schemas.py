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


class LinkCreate(Strict):
    peer: str
    local_endpoint: str
    remote_endpoint: str | None = None
    tunnel_type: str = "vxlan"
    mtu: int = 1500
    enabled: bool = True


class LinkUpdate(Strict):
    enabled: bool | None = None
    mtu: int | None = None


class AgreementCreate(Strict):
    peer: str
    projects: list[str] = Field(default_factory=list)
    peer_projects: list[str] = Field(default_factory=list)
    max_expansions_per_project: int = 10


class AgreementUpdate(Strict):
    projects: list[str] | None = None
    peer_projects: list[str] | None = None
    max_expansions_per_project: int | None = None


class ExpansionCreate(Strict):
    network: str
    peers: list[str]
    vni: int | None = None


class ReplicaPut(Strict):
    project: str
    network: str
    cidr: str


class VniAgree(Strict):
    vni: int | None = None
    exclude: list[int] = Field(default_factory=list)
