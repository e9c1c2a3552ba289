"""`openstack intercloud ...`: expansions and networks (a project's members), peers, links,
agreements and status (the agent's admins: the admin role on the admin project)."""

from __future__ import annotations

import re
import time
from typing import Any

from osc_lib import exceptions
from osc_lib.command import command

UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
EXPANSION_COLUMNS = ("id", "network", "cidr", "status", "peers")
WAIT_SECONDS = 120.0


def _agent(cmd: command.Command) -> Any:
    return cmd.app.client_manager.intercloud


def _cell(value: Any) -> Any:
    """Lists and objects as one readable cell (table); -f json keeps them whole anyway."""
    if isinstance(value, list) and value and isinstance(value[0], dict) and "peer" in value[0]:
        return ", ".join(f"{p['peer']}={p.get('status')}" for p in value)
    return value


def _row(obj: dict, columns: tuple[str, ...], parsed: Any) -> tuple:
    table = getattr(parsed, "formatter", "table") == "table"
    return tuple(_cell(obj.get(c)) if table else obj.get(c) for c in columns)


def _show(obj: dict, parsed: Any) -> tuple[tuple[str, ...], tuple]:
    columns = tuple(sorted(obj))
    return columns, _row(obj, columns, parsed)


class _List(command.Lister):
    path: tuple[str, ...] = ()
    columns: tuple[str, ...] = ()

    def take_action(self, parsed_args: Any) -> tuple:
        rows = _agent(self).call("GET", *self.path) or []
        return self.columns, [_row(r, self.columns, parsed_args) for r in rows]


class _Show(command.ShowOne):
    path: tuple[str, ...] = ()
    what = "name"

    def get_parser(self, prog_name: str) -> Any:
        parser = super().get_parser(prog_name)
        parser.add_argument(self.what, metavar=f"<{self.what}>")
        return parser

    def take_action(self, parsed_args: Any) -> tuple:
        return _show(
            _agent(self).call("GET", *self.path, getattr(parsed_args, self.what)), parsed_args
        )


# -- a project's expansions and networks ---------------------------------------------------------


def _find_expansion(cmd: command.Command, ref: str) -> dict:
    """By id, or by the name of its network."""
    if UUID.fullmatch(ref):
        return _agent(cmd).call("GET", "expansions", ref)
    found = [e for e in _agent(cmd).call("GET", "expansions") or [] if e.get("network") == ref]
    if not found:
        raise exceptions.CommandError(f"intercloud: no expansion of network {ref!r}")
    return found[0]


def _wait(cmd: command.Command, uid: str, until: str, timeout: float) -> dict | None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            exp = _agent(cmd).call("GET", "expansions", uid)
        except exceptions.CommandError:
            if until == "gone":
                return None
            raise
        if exp.get("status") == until or exp.get("status") == "error":
            return exp
        if time.monotonic() > deadline:
            raise exceptions.CommandError(
                f"intercloud: expansion {uid} still {exp.get('status')} after {timeout:.0f} s"
            )
        time.sleep(1.0)


def _why(exp: dict) -> str:
    """`B: peer B unreachable; C: ...`: what each peer in error says."""
    peers = exp.get("peers")
    peers = peers if isinstance(peers, list) else []
    failed = [p for p in peers if isinstance(p, dict) and p.get("status") == "error"]
    return "; ".join(f"{p.get('peer')}: {p.get('reason') or 'no reason given'}" for p in failed)


class CreateExpansion(command.ShowOne):
    """Stretch one of your project's networks into peer clouds."""

    def get_parser(self, prog_name: str) -> Any:
        parser = super().get_parser(prog_name)
        parser.add_argument("network", metavar="<network>", help="network name or ID")
        parser.add_argument(
            "--peer", action="append", required=True, metavar="<peer>", help="repeatable"
        )
        parser.add_argument("--vni", type=int, help="tunnel ID (default: agreed with the peers)")
        parser.add_argument("--rate-mbit", type=float, help="egress limit to each peer")
        parser.add_argument("--wait", action="store_true", help="until it is active")
        parser.add_argument("--timeout", type=float, default=WAIT_SECONDS)
        return parser

    def take_action(self, parsed_args: Any) -> tuple:
        body: dict[str, Any] = {"network": parsed_args.network, "peers": parsed_args.peer}
        if parsed_args.vni is not None:
            body["vni"] = parsed_args.vni
        if parsed_args.rate_mbit is not None:
            body["rate_mbit"] = parsed_args.rate_mbit
        exp = _agent(self).call("POST", "expansions", body=body)
        if parsed_args.wait:
            exp = _wait(self, exp["id"], "active", parsed_args.timeout) or exp
            if exp.get("status") == "error":
                raise exceptions.CommandError(
                    f"intercloud: expansion {exp['id']} failed: {_why(exp)}"
                )
        return _show(exp, parsed_args)


class ListExpansion(_List):
    """Your project's expansions."""

    path = ("expansions",)
    columns = EXPANSION_COLUMNS


class ShowExpansion(command.ShowOne):
    """One expansion (by ID or network name)."""

    def get_parser(self, prog_name: str) -> Any:
        parser = super().get_parser(prog_name)
        parser.add_argument("expansion", metavar="<expansion>", help="ID or network name")
        return parser

    def take_action(self, parsed_args: Any) -> tuple:
        return _show(_find_expansion(self, parsed_args.expansion), parsed_args)


class DeleteExpansion(command.Command):
    """Shrink a network back home (by ID or network name)."""

    def get_parser(self, prog_name: str) -> Any:
        parser = super().get_parser(prog_name)
        parser.add_argument("expansion", metavar="<expansion>", help="ID or network name")
        parser.add_argument("--wait", action="store_true", help="until it is gone")
        parser.add_argument("--timeout", type=float, default=WAIT_SECONDS)
        return parser

    def take_action(self, parsed_args: Any) -> None:
        exp = _find_expansion(self, parsed_args.expansion)
        _agent(self).call("DELETE", "expansions", exp["id"])
        if parsed_args.wait:
            _wait(self, exp["id"], "gone", parsed_args.timeout)


class ListNetwork(_List):
    """Your project's networks that can be expanded."""

    path = ("networks",)
    columns = ("name", "cidr", "expansion")


# -- the agent's admins --------------------------------------------------------------------------


class ListPeer(_List):
    """Peer agents."""

    path = ("peers",)
    columns = ("name", "federation_url", "underlay_endpoint")


class ShowPeer(_Show):
    """One peer agent."""

    path = ("peers",)


class ListLink(_List):
    """Links to peers."""

    path = ("links",)
    columns = ("peer", "local_endpoint", "remote_endpoint", "tunnel_type", "encrypted")


class ShowLink(_Show):
    """The link to one peer."""

    path = ("links",)
    what = "peer"


class ListAgreement(_List):
    """Agreements with peers."""

    path = ("agreements",)
    columns = ("peer", "projects", "peer_projects", "max_expansions_per_project", "proxy_services")


class ShowAgreement(_Show):
    """The agreement with one peer."""

    path = ("agreements",)
    what = "peer"


class ShowStatus(command.ShowOne):
    """The agent's status: links, expansions, replicas, the reconciler."""

    def take_action(self, parsed_args: Any) -> tuple:
        return _show(_agent(self).call("GET", "status"), parsed_args)
