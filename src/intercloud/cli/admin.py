"""The admin API's commands (admin token) that differ per resource: create and update of
peers, links and agreements (their list/show/delete, and `replica list`: `cli.resources`)."""

from __future__ import annotations

from typing import Any

import click

from intercloud.api_client import path
from intercloud.cli import output, tables
from intercloud.cli.context import CliContext
from intercloud.cli.resources import AGREEMENTS, LINKS, PEERS, REPLICAS, make_group


def read_secret(
    state: CliContext, value: str | None, file: Any, option: str, *, required: bool
) -> str | None:
    """A secret from `--x VALUE` or `--x-file FILE`; remembered so that no output shows it."""
    if value is not None and file is not None:
        raise click.UsageError(f"give exactly one of {option} or {option}-file")
    if file is not None:
        value = file.read().rstrip("\r\n")
        if not value:
            raise click.UsageError(f"{option}-file: the file is empty")
    if value is None and required:
        raise click.UsageError(f"give exactly one of {option} or {option}-file")
    if value:
        state.keep_secret(value)
    return value


# --- peers ------------------------------------------------------------------------------------

CA_FILE_HELP = (
    "PEM file of the CA (or the peer's own certificate) its TLS certificate must chain to "
    "(pinned; default: the system's CAs)."
)


peer = make_group(PEERS)


@peer.command("create")
@click.argument("name")
@click.option("--url", "federation_url", required=True, help="The peer agent's federation URL.")
@click.option("--endpoint", "underlay_endpoint", required=True, help="The peer's underlay IP.")
@click.option("--key", default=None, help="Shared HMAC key, >= 16 chars (prefer --key-file).")
@click.option(
    "--key-file", type=click.File("r"), default=None, help="Read the key from a file ('-': stdin)."
)
@click.option("--ca-file", type=click.File("r"), default=None, help=CA_FILE_HELP)
@click.pass_obj
def peer_create(
    state: CliContext,
    name: str,
    federation_url: str,
    underlay_endpoint: str,
    key: str | None,
    key_file: Any,
    ca_file: Any,
) -> None:
    """Register peer cloud NAME (its own agent.name)."""
    key = read_secret(state, key, key_file, "--key", required=True)
    body = {
        "name": name,
        "federation_url": federation_url,
        "underlay_endpoint": underlay_endpoint,
        "key": key,
    }
    if ca_file is not None:
        body["tls_ca"] = ca_file.read()
    output.emit(state, state.client.post("/v1/peers", body), output.print_object)


@peer.command("update")
@click.argument("name")
@click.option("--url", "federation_url", default=None, help="A new federation URL.")
@click.option("--ca-file", type=click.File("r"), default=None, help=CA_FILE_HELP)
@click.option("--no-ca", is_flag=True, help="Unpin: trust the system's CAs for this peer.")
@click.pass_obj
def peer_update(
    state: CliContext, name: str, federation_url: str | None, ca_file: Any, no_ca: bool
) -> None:
    """Change peer NAME's federation URL or pinned TLS CA."""
    if ca_file is not None and no_ca:
        raise click.UsageError("give at most one of --ca-file or --no-ca")
    body: dict[str, Any] = {}
    if federation_url is not None:
        body["federation_url"] = federation_url
    if ca_file is not None or no_ca:
        body["tls_ca"] = None if no_ca else ca_file.read()
    if not body:
        raise click.UsageError("nothing to change (give --url, --ca-file or --no-ca)")
    output.emit(state, state.client.patch(path("v1", "peers", name), body), output.print_object)


# --- links ------------------------------------------------------------------------------------


link = make_group(LINKS)


@link.command("create")
@click.argument("peer_name", metavar="PEER")
@click.option("--local", "local_endpoint", required=True, help="This cloud's tunnel endpoint IP.")
@click.option("--remote", "remote_endpoint", default=None, help="Default: the peer's underlay.")
@click.option("--tunnel-type", default=None, help="Tunnel type (default vxlan).")
@click.option("--mtu", type=int, default=None, help="Tunnel MTU (default 1500).")
@click.option("--disabled", is_flag=True, help="Create the link disabled.")
@click.option("--unencrypted", is_flag=True, help="No IPsec (links are encrypted by default).")
@click.option("--psk", default=None, help="IPsec pre-shared key (prefer --psk-file).")
@click.option("--psk-file", type=click.File("r"), default=None, help="Read the PSK from a file.")
@click.option("--ike-policy", default=None, help="IKE policy name (default: built-in default).")
@click.option("--ipsec-policy", default=None, help="IPsec policy name (default: built-in).")
@click.option(
    "--peer-tunnel-endpoint",
    default=None,
    help="The peer's own address when it sits behind NAT (else learned from the peer).",
)
@click.pass_obj
def link_create(
    state: CliContext,
    peer_name: str,
    local_endpoint: str,
    remote_endpoint: str | None,
    tunnel_type: str | None,
    mtu: int | None,
    disabled: bool,
    unencrypted: bool,
    psk: str | None,
    psk_file: Any,
    ike_policy: str | None,
    ipsec_policy: str | None,
    peer_tunnel_endpoint: str | None,
) -> None:
    """Create the link to PEER (encrypted with IPsec unless --unencrypted)."""
    body: dict[str, Any] = {"peer": peer_name, "local_endpoint": local_endpoint}
    body["encrypted"] = not unencrypted
    psk = read_secret(state, psk, psk_file, "--psk", required=False)
    for key, value in (
        ("psk", psk),
        ("ike_policy", ike_policy),
        ("ipsec_policy", ipsec_policy),
        ("peer_tunnel_endpoint", peer_tunnel_endpoint),
    ):
        if value is not None:
            body[key] = value
    if remote_endpoint is not None:
        body["remote_endpoint"] = remote_endpoint
    if tunnel_type is not None:
        body["tunnel_type"] = tunnel_type
    if mtu is not None:
        body["mtu"] = mtu
    body["enabled"] = not disabled
    output.emit(state, state.client.post("/v1/links", body), tables.show_link)


@link.command("update")
@click.argument("peer_name", metavar="PEER")
@click.option("--enable/--disable", "enabled", default=None, help="Enable or disable the link.")
@click.option("--mtu", type=int, default=None, help="New tunnel MTU.")
@click.option("--psk", default=None, help="New IPsec pre-shared key (prefer --psk-file).")
@click.option("--psk-file", type=click.File("r"), default=None, help="Read the PSK from a file.")
@click.option("--ike-policy", default=None, help="IKE policy name.")
@click.option("--ipsec-policy", default=None, help="IPsec policy name.")
@click.pass_obj
def link_update(
    state: CliContext,
    peer_name: str,
    enabled: bool | None,
    mtu: int | None,
    psk: str | None,
    psk_file: Any,
    ike_policy: str | None,
    ipsec_policy: str | None,
) -> None:
    """Enable, disable, re-size or re-key the link to PEER."""
    body: dict[str, Any] = {}
    psk = read_secret(state, psk, psk_file, "--psk", required=False)
    for key, value in (
        ("enabled", enabled),
        ("mtu", mtu),
        ("psk", psk),
        ("ike_policy", ike_policy),
        ("ipsec_policy", ipsec_policy),
    ):
        if value is not None:
            body[key] = value
    if not body:
        raise click.UsageError(
            "nothing to update: give --enable/--disable, --mtu, --psk or a policy"
        )
    output.emit(state, state.client.patch(path("v1", "links", peer_name), body), tables.show_link)


# --- agreements -------------------------------------------------------------------------------


agreement = make_group(AGREEMENTS)


_projects = click.option(
    "--project",
    "projects",
    multiple=True,
    help="Local project that may expand to the peer ('*' = all); repeatable.",
)
_peer_projects = click.option(
    "--peer-project",
    "peer_projects",
    multiple=True,
    help="Peer project that may expand into this cloud ('*' = all); repeatable.",
)
_max_expansions = click.option(
    "--max-expansions", type=int, default=None, help="Expansions per project (default 10)."
)
_default_rate = click.option(
    "--default-rate",
    type=float,
    default=None,
    metavar="MBIT",
    help="Egress limit per expansion toward the peer when it sets none (Mbit/s).",
)
_proxy_services = click.option(
    "--proxy-service",
    "proxy_services",
    multiple=True,
    help="Keystone service type the tenant API proxy may reach (default: network, compute); "
    "repeatable.",
)


@agreement.command("create")
@click.argument("peer_name", metavar="PEER")
@_projects
@_peer_projects
@_max_expansions
@_default_rate
@_proxy_services
@click.pass_obj
def agreement_create(
    state: CliContext,
    peer_name: str,
    projects: tuple[str, ...],
    peer_projects: tuple[str, ...],
    max_expansions: int | None,
    default_rate: float | None,
    proxy_services: tuple[str, ...],
) -> None:
    """Create the agreement with PEER."""
    body: dict[str, Any] = {
        "peer": peer_name,
        "projects": list(projects),
        "peer_projects": list(peer_projects),
    }
    if proxy_services:
        body["proxy_services"] = list(proxy_services)
    if max_expansions is not None:
        body["max_expansions_per_project"] = max_expansions
    if default_rate is not None:
        body["default_rate_mbit"] = default_rate
    output.emit(state, state.client.post("/v1/agreements", body), output.print_object)


@agreement.command("update")
@click.argument("peer_name", metavar="PEER")
@_projects
@_peer_projects
@_max_expansions
@_default_rate
@_proxy_services
@click.pass_obj
def agreement_update(
    state: CliContext,
    peer_name: str,
    projects: tuple[str, ...],
    peer_projects: tuple[str, ...],
    max_expansions: int | None,
    default_rate: float | None,
    proxy_services: tuple[str, ...],
) -> None:
    """Change the agreement with PEER; a given list replaces the old one."""
    body: dict[str, Any] = {}
    if proxy_services:
        body["proxy_services"] = list(proxy_services)
    if projects:
        body["projects"] = list(projects)
    if peer_projects:
        body["peer_projects"] = list(peer_projects)
    if max_expansions is not None:
        body["max_expansions_per_project"] = max_expansions
    if default_rate is not None:
        body["default_rate_mbit"] = default_rate
    if not body:
        raise click.UsageError(
            "nothing to update: give --project, --peer-project, --max-expansions, "
            "--default-rate and/or --proxy-service"
        )
    answer = state.client.patch(path("v1", "agreements", peer_name), body)
    output.emit(state, answer, output.print_object)


GROUPS = [peer, link, agreement, make_group(REPLICAS)]
