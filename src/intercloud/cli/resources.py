"""Every resource's command group with its `list`, `show` and `delete` commands, made by one
factory from one table; the modules of the groups add the commands that differ (create,
update, `expansion delete --wait`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import click

from intercloud.api_client import path
from intercloud.cli import output, tables
from intercloud.cli.context import CliContext
from intercloud.cli.output import Columns


@dataclass(frozen=True)
class Resource:
    group: str  # the command group: `intercloud peer ...`
    help: str  # the group's help
    path: str  # its collection in the API: /v1/<path>, one of them /v1/<path>/<name>
    columns: Columns  # of `list`
    list_help: str
    empty: str  # what `list` prints when there are none
    metavar: str = "NAME"  # how the help names the argument of `show` and `delete`
    show_help: str | None = None  # None: no `show` command
    render: Callable[[Any], None] = output.print_object  # the answer of `show`
    delete_help: str | None = None  # None: no generated `delete` command
    deleted: str = ""  # what `delete` removed, `{}` standing for the name: "peer {}"


PEERS = Resource(
    group="peer",
    help="Peer clouds (admin token).",
    path="peers",
    columns=tables.PEER_COLUMNS,
    list_help="List peer clouds.",
    empty="no peers",
    show_help="Show peer cloud NAME.",
    delete_help="Remove peer cloud NAME (refused while a link or agreement names it).",
    deleted="peer {}",
)
LINKS = Resource(
    group="link",
    help="Tunnels to peer clouds (admin token).",
    path="links",
    columns=tables.LINK_COLUMNS,
    list_help="List links and their state.",
    empty="no links",
    metavar="PEER",
    show_help="Show the link to PEER.",
    render=tables.show_link,
    delete_help="Remove the link to PEER (refused while expansions or replicas use it).",
    deleted="link to {}",
)
AGREEMENTS = Resource(
    group="agreement",
    help="Which projects may expand to and from a peer (admin token).",
    path="agreements",
    columns=tables.AGREEMENT_COLUMNS,
    list_help="List agreements.",
    empty="no agreements",
    metavar="PEER",
    show_help="Show the agreement with PEER.",
    delete_help="Remove the agreement with PEER.",
    deleted="agreement with {}",
)
REPLICAS = Resource(
    group="replica",
    help="Networks this agent hosts for peers (admin token).",
    path="replicas",
    columns=tables.REPLICA_COLUMNS,
    list_help="List replicas hosted for peers.",
    empty="no replicas",
)
IKE_POLICIES = Resource(
    group="ike-policy",
    help="IKE policies for links (admin token).",
    path="ike-policies",
    columns=tables.IKE_COLUMNS,
    list_help="List policies.",
    empty="no IKE policies (the default applies)",
    show_help="Show policy NAME.",
    delete_help="Delete policy NAME (refused while a link uses it).",
    deleted="IKE policy {}",
)
IPSEC_POLICIES = Resource(
    group="ipsec-policy",
    help="IPsec (ESP) policies for links (admin token).",
    path="ipsec-policies",
    columns=tables.IPSEC_COLUMNS,
    list_help="List policies.",
    empty="no IPsec policies (the default applies)",
    show_help="Show policy NAME.",
    delete_help="Delete policy NAME (refused while a link uses it).",
    deleted="IPsec policy {}",
)
NETWORKS = Resource(
    group="network",
    help="Your project's networks (project token).",
    path="networks",
    columns=tables.NETWORK_COLUMNS,
    list_help="List the networks your project may expand.",
    empty="no networks",
)
EXPANSIONS = Resource(
    group="expansion",
    help="Stretch your networks to peer clouds (project token).",
    path="expansions",
    columns=tables.EXPANSION_COLUMNS,
    list_help="List your project's expansions.",
    empty="no expansions",
    metavar="ID",
    show_help="Show expansion ID with its per-peer status.",
    render=tables.show_expansion,
)


def make_group(resource: Resource) -> click.Group:
    """The resource's group with `list`, and `show` and `delete` where the table has them."""
    r = resource
    group = click.Group(r.group, help=r.help)

    @group.command("list", help=r.list_help)
    @click.pass_obj
    def list_all(state: CliContext) -> None:
        output.show_list(state, path("v1", r.path), r.columns, r.empty)

    if r.show_help is not None:

        @group.command("show", help=r.show_help)
        @click.argument("name", metavar=r.metavar)
        @click.pass_obj
        def show(state: CliContext, name: str) -> None:
            output.emit(state, state.client.get(path("v1", r.path, name)), r.render)

    if r.delete_help is not None:

        @group.command("delete", help=r.delete_help)
        @click.argument("name", metavar=r.metavar)
        @click.pass_obj
        def delete(state: CliContext, name: str) -> None:
            answer = state.client.delete(path("v1", r.path, name))
            output.deleted(state, answer, r.deleted.format(name))

    return group
