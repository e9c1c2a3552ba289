"""Admin use cases: IKE and IPsec policies (the provider's crypto, never the user's)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from intercloud.domain import crypto
from intercloud.domain import validation as v
from intercloud.errors import Conflict, NotFound
from intercloud.store import models as m


def ike_view(p: m.IkePolicyRow) -> dict[str, Any]:
    return {
        "name": p.name,
        "version": p.version,
        "encryption": p.encryption,
        "integrity": p.integrity,
        "prf": p.prf,
        "dh_groups": p.dh_groups,
        "lifetime": p.lifetime,
        "proposals": list(to_ike(p).proposals()),
    }


def ipsec_view(p: m.IpsecPolicyRow) -> dict[str, Any]:
    return {
        "name": p.name,
        "encryption": p.encryption,
        "integrity": p.integrity,
        "pfs_group": p.pfs_group,
        "lifetime": p.lifetime,
        "mode": p.mode,
        "proposals": list(to_ipsec(p).proposals()),
    }


def to_ike(p: m.IkePolicyRow | None) -> crypto.IkePolicy:
    if p is None:
        return crypto.IkePolicy()
    return crypto.IkePolicy(
        p.name,
        p.version,
        tuple(p.encryption),
        tuple(p.integrity),
        tuple(p.prf),
        tuple(p.dh_groups),
        p.lifetime,
    )


def to_ipsec(p: m.IpsecPolicyRow | None) -> crypto.IpsecPolicy:
    if p is None:
        return crypto.IpsecPolicy()
    return crypto.IpsecPolicy(
        p.name, tuple(p.encryption), tuple(p.integrity), p.pfs_group, p.lifetime, p.mode
    )


def create_ike(s: Session, body: dict[str, Any]) -> dict[str, Any]:
    name = v.name(body.get("name"), "name")
    pol = crypto.ike_policy(
        name,
        body.get("version", 2),
        body.get("encryption"),
        body.get("integrity"),
        body.get("prf"),
        body.get("dh_groups"),
        body.get("lifetime", 14400),
    )
    if s.scalar(select(m.IkePolicyRow).where(m.IkePolicyRow.name == name)):
        raise Conflict(f"name: IKE policy {name!r} already exists", field="name")
    row = m.IkePolicyRow(
        name=name,
        version=pol.version,
        encryption=list(pol.encryption),
        integrity=list(pol.integrity),
        prf=list(pol.prf),
        dh_groups=list(pol.dh_groups),
        lifetime=pol.lifetime,
    )
    s.add(row)
    s.flush()
    return ike_view(row)


def create_ipsec(s: Session, body: dict[str, Any]) -> dict[str, Any]:
    name = v.name(body.get("name"), "name")
    pol = crypto.ipsec_policy(
        name,
        body.get("encryption"),
        body.get("integrity"),
        body.get("pfs_group", "ecp256"),
        body.get("lifetime", 3600),
        body.get("mode", "transport"),
    )
    if s.scalar(select(m.IpsecPolicyRow).where(m.IpsecPolicyRow.name == name)):
        raise Conflict(f"name: IPsec policy {name!r} already exists", field="name")
    row = m.IpsecPolicyRow(
        name=name,
        encryption=list(pol.encryption),
        integrity=list(pol.integrity),
        pfs_group=pol.pfs_group,
        lifetime=pol.lifetime,
        mode=pol.mode,
    )
    s.add(row)
    s.flush()
    return ipsec_view(row)


def get_ike(s: Session, name: str, field: str = "name") -> m.IkePolicyRow:
    row = s.scalar(select(m.IkePolicyRow).where(m.IkePolicyRow.name == name))
    if row is None:
        raise NotFound(f"{field}: unknown IKE policy {name!r}", field=field)
    return row


def get_ipsec(s: Session, name: str, field: str = "name") -> m.IpsecPolicyRow:
    row = s.scalar(select(m.IpsecPolicyRow).where(m.IpsecPolicyRow.name == name))
    if row is None:
        raise NotFound(f"{field}: unknown IPsec policy {name!r}", field=field)
    return row


def list_ike(s: Session) -> list[dict[str, Any]]:
    return [ike_view(p) for p in s.scalars(select(m.IkePolicyRow).order_by(m.IkePolicyRow.name))]


def list_ipsec(s: Session) -> list[dict[str, Any]]:
    rows = s.scalars(select(m.IpsecPolicyRow).order_by(m.IpsecPolicyRow.name))
    return [ipsec_view(p) for p in rows]


def delete_ike(s: Session, name: str) -> None:
    row = get_ike(s, name)
    used = s.scalar(select(func.count()).select_from(m.Link).where(m.Link.ike_policy_id == row.id))
    if used:
        raise Conflict(f"name: IKE policy {name!r} is used by {used} link(s)", field="name")
    s.delete(row)


def delete_ipsec(s: Session, name: str) -> None:
    row = get_ipsec(s, name)
    used = s.scalar(
        select(func.count()).select_from(m.Link).where(m.Link.ipsec_policy_id == row.id)
    )
    if used:
        raise Conflict(f"name: IPsec policy {name!r} is used by {used} link(s)", field="name")
    s.delete(row)
