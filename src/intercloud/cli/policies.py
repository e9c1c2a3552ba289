"""The commands that create IKE and IPsec policies (admin token): the provider's crypto
(their list/show/delete: `cli.resources`)."""

from __future__ import annotations

from typing import Any

import click

from intercloud.cli import output
from intercloud.cli.context import CliContext
from intercloud.cli.resources import IKE_POLICIES, IPSEC_POLICIES, make_group


def _algorithms(value: str | None) -> list[str] | None:
    return None if value is None else [a.strip() for a in value.split(",") if a.strip()]


def _body(name: str, **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"name": name}
    body.update({k: v for k, v in fields.items() if v is not None})
    return body


ike_policy = make_group(IKE_POLICIES)


@ike_policy.command("create")
@click.argument("name")
@click.option("--version", "ike_version", type=int, default=None, help="IKE version (2).")
@click.option("--encryption", default=None, help="Comma list, e.g. aes256gcm16,aes256.")
@click.option("--integrity", default=None, help="Comma list, e.g. sha256 (non-AEAD only).")
@click.option("--prf", default=None, help="Comma list, e.g. prfsha256.")
@click.option("--dh-groups", default=None, help="Comma list, e.g. ecp256,curve25519.")
@click.option("--lifetime", type=int, default=None, help="IKE SA rekey time, seconds.")
@click.pass_obj
def ike_create(
    state: CliContext,
    name: str,
    ike_version: int | None,
    encryption: str | None,
    integrity: str | None,
    prf: str | None,
    dh_groups: str | None,
    lifetime: int | None,
) -> None:
    """Create IKE policy NAME; weak algorithms are refused."""
    body = _body(
        name,
        version=ike_version,
        encryption=_algorithms(encryption),
        integrity=_algorithms(integrity),
        prf=_algorithms(prf),
        dh_groups=_algorithms(dh_groups),
        lifetime=lifetime,
    )
    output.emit(state, state.client.post("/v1/ike-policies", body), output.print_object)


ipsec_policy = make_group(IPSEC_POLICIES)


@ipsec_policy.command("create")
@click.argument("name")
@click.option("--encryption", default=None, help="Comma list, e.g. aes256gcm16.")
@click.option("--integrity", default=None, help="Comma list (non-AEAD only).")
@click.option("--pfs-group", default=None, help="PFS DH group, or 'none'.")
@click.option("--lifetime", type=int, default=None, help="CHILD_SA rekey time, seconds.")
@click.option("--mode", type=click.Choice(["transport", "tunnel"]), default=None)
@click.pass_obj
def ipsec_create(
    state: CliContext,
    name: str,
    encryption: str | None,
    integrity: str | None,
    pfs_group: str | None,
    lifetime: int | None,
    mode: str | None,
) -> None:
    """Create IPsec policy NAME; weak algorithms are refused."""
    body = _body(
        name,
        encryption=_algorithms(encryption),
        integrity=_algorithms(integrity),
        pfs_group=pfs_group,
        lifetime=lifetime,
        mode=mode,
    )
    output.emit(state, state.client.post("/v1/ipsec-policies", body), output.print_object)


GROUPS = [ike_policy, ipsec_policy]
