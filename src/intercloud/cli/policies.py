"""CLI groups for IKE and IPsec policies (admin token): the provider's crypto."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from intercloud.cli import output
from intercloud.cli.output import Columns
from intercloud.api_client import path

if TYPE_CHECKING:
    from intercloud.cli.main import State

IKE_COLUMNS: Columns = [
    ("NAME", "name"),
    ("VERSION", "version"),
    ("PROPOSALS", "proposals"),
    ("LIFETIME", "lifetime"),
]
IPSEC_COLUMNS: Columns = [
    ("NAME", "name"),
    ("PROPOSALS", "proposals"),
    ("MODE", "mode"),
    ("LIFETIME", "lifetime"),
]


def _algorithms(value: str | None) -> list[str] | None:
    return None if value is None else [a.strip() for a in value.split(",") if a.strip()]


def _body(name: str, **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"name": name}
    body.update({k: v for k, v in fields.items() if v is not None})
    return body


def _crud(group: click.Group, kind: str, url: str, columns: Columns) -> None:
    @group.command("list")
    @click.pass_obj
    def _list(state: State) -> None:
        """List policies."""
        output.show_list(state, f"/v1/{url}", columns, f"no {kind} policies (the default applies)")

    @group.command("show")
    @click.argument("name")
    @click.pass_obj
    def _show(state: State, name: str) -> None:
        """Show policy NAME."""
        output.emit(state, state.client.get(path("v1", url, name)), output.print_object)

    @group.command("delete")
    @click.argument("name")
    @click.pass_obj
    def _delete(state: State, name: str) -> None:
        """Delete policy NAME (refused while a link uses it)."""
        output.deleted(state, state.client.delete(path("v1", url, name)), f"{kind} policy {name}")


@click.group("ike-policy")
def ike_policy() -> None:
    """IKE policies for links (admin token)."""


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
    state: State,
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


@click.group("ipsec-policy")
def ipsec_policy() -> None:
    """IPsec (ESP) policies for links (admin token)."""


@ipsec_policy.command("create")
@click.argument("name")
@click.option("--encryption", default=None, help="Comma list, e.g. aes256gcm16.")
@click.option("--integrity", default=None, help="Comma list (non-AEAD only).")
@click.option("--pfs-group", default=None, help="PFS DH group, or 'none'.")
@click.option("--lifetime", type=int, default=None, help="CHILD_SA rekey time, seconds.")
@click.option("--mode", type=click.Choice(["transport", "tunnel"]), default=None)
@click.pass_obj
def ipsec_create(
    state: State,
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


_crud(ike_policy, "IKE", "ike-policies", IKE_COLUMNS)
_crud(ipsec_policy, "IPsec", "ipsec-policies", IPSEC_COLUMNS)
GROUPS = [ike_policy, ipsec_policy]
