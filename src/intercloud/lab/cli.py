"""`intercloud lab ...`: build and drive a federation of clouds in network namespaces.

The main CLI registers the group with `from intercloud.lab.cli import lab`; it also runs on its
own as `python -m intercloud.lab.cli`.
"""

from __future__ import annotations

import itertools
import json
from typing import Any

import click

from intercloud.lab.charon import MAX_LANES
from intercloud.lab.cli_common import LabGroup, name_option, open_lab
from intercloud.lab.gateway_cli import gateway, print_gateways
from intercloud.lab.openstack import tenant
from intercloud.lab.openstack.lab import OpenStackLab
from intercloud.lab.openstack.plug import plug_port
from intercloud.lab.topology import DEFAULT_LANES, PROJECTS, Lab


@click.group(cls=LabGroup)
def lab() -> None:
    """A federation of N clouds in network namespaces on this host (needs root)."""


@lab.command()
@click.option(
    "--clouds",
    default=3,
    show_default=True,
    type=click.IntRange(1, 26),
    help="Number of clouds (A, B, C, ...).",
)
@name_option
@click.option(
    "--peer/--no-peer",
    default=False,
    show_default=True,
    help="Peer every pair of clouds (full mesh) for projects p1 and p2.",
)
@click.option(
    "--agents/--no-agents",
    default=True,
    show_default=True,
    help="Start an agent per cloud (--no-agents: namespaces and configs only).",
)
@click.option(
    "--encrypt/--no-encrypt",
    default=None,
    help="Run a charon per gateway and encrypt every link with IPsec (default: on).",
)
@click.option(
    "--openstack",
    is_flag=True,
    help="Each cloud runs a real Keystone, Neutron API and Open vSwitch; agents use the "
    "openstack cloud driver and the ovs data plane with kernel tunnels (no NAT).",
)
@click.option(
    "--nat",
    "nat",
    multiple=True,
    metavar="CLOUD",
    help="Put CLOUD behind a NAT router (repeatable), e.g. --nat C.",
)
@click.option(
    "--lanes",
    type=click.IntRange(1, MAX_LANES),
    default=None,
    help="Charons per gateway sharing the encryption (default: 2 on a host with 2 or more "
    "cores, else 1; see drivers/ipsec/lanes.py).",
)
@click.option(
    "--ha",
    is_flag=True,
    help="Two gateways per cloud sharing the cloud's address, a tenant segment and a PostgreSQL "
    "(one active; see `lab gateway`).",
)
@click.option("--timeout", default=30.0, show_default=True, help="Seconds to wait per agent.")
def up(
    clouds: int,
    lab_name: str,
    peer: bool,
    agents: bool,
    encrypt: bool | None,
    openstack: bool,
    nat: tuple[str, ...],
    lanes: int | None,
    ha: bool,
    timeout: float,
) -> None:
    """Create the namespaces, underlay, tenant bridges, charons and agents."""
    if ha and (openstack or nat):
        raise click.UsageError("--ha builds plain clouds without NAT (drop --openstack, --nat)")
    if peer and not agents:
        raise click.UsageError("--peer needs the agents (drop --no-agents)")
    if openstack and nat:
        raise click.UsageError("--openstack runs without --nat")
    encrypt = True if encrypt is None else encrypt
    if nat and not encrypt:
        raise click.UsageError("--nat needs --encrypt (NAT traversal is IPsec's NAT-T)")
    if lanes is not None and not encrypt:
        raise click.UsageError("--lanes needs --encrypt (lanes are charons)")
    lb: Lab
    if lanes is None:
        lanes = DEFAULT_LANES if encrypt else 1
    if openstack:
        lb = OpenStackLab(lab_name)
        lb.up(clouds, start_agents=agents, encrypt=encrypt, lanes=lanes, timeout=max(timeout, 60.0))
    else:
        lb = Lab(lab_name)
        lb.up(
            clouds,
            start_agents=agents,
            encrypt=encrypt,
            nat=nat,
            timeout=timeout,
            lanes=lanes,
            ha=ha,
        )
    if peer:
        try:
            for a, b in itertools.combinations(lb.clouds, 2):
                lb.peer(a, b)
        except BaseException:
            lb.down()
            raise
    _print_status(lb.status())
    click.echo(
        f"\nnext: intercloud lab exec --name {lab_name} A -- intercloud status   |   "
        f"intercloud lab down --name {lab_name}"
    )


@lab.command()
@name_option
def down(lab_name: str) -> None:
    """Stop the agents, delete every <name>-* namespace and the state dir."""
    deleted = open_lab(lab_name).down()
    click.echo(f"lab {lab_name} down ({len(deleted)} namespaces deleted)")


@lab.command()
@name_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def status(lab_name: str, as_json: bool) -> None:
    """Clouds, agents (alive, healthy), namespaces and VMs."""
    st = open_lab(lab_name).status()
    if as_json:
        click.echo(json.dumps(st, indent=2))
    else:
        _print_status(st)


def _print_status(st: dict[str, Any]) -> None:
    if not st["up"]:
        click.echo(f"lab {st['name']} is not up")
        if st["namespaces"]:
            click.echo(f"leftover namespaces (run lab down): {', '.join(st['namespaces'])}")
        return
    click.echo(f"lab {st['name']}  (state {st['state_dir']})")
    for c in st["clouds"]:
        agent = ("healthy" if c["healthy"] else "alive, not answering") if c["alive"] else "stopped"
        ns = c["namespace"] + ("" if c["present"] else " (MISSING)")
        click.echo(
            f"  cloud {c['name']}  {ns:<16} {c['ip']:<12} agent {agent}"
            + (f" (pid {c['pid']})" if c["alive"] and c["pid"] else "")
        )
        print_gateways(c.get("gateways", []))
    for vm in st["vms"]:
        where = f"network {vm['network']}" if vm["network"] else f"replica of {vm['replica_of']}"
        gone = "" if vm["present"] else " (MISSING)"
        click.echo(f"  vm {vm['target']:<14} {vm['ip']:<16} {where} (bridge {vm['bridge']}){gone}")
    for a, b in st["peerings"]:
        click.echo(f"  peering {a} <-> {b}")


@lab.command()
@name_option
@click.argument("cloud")
def ca(lab_name: str, cloud: str) -> None:
    """The path of CLOUD's CA certificate (what its peers pin: `peer create --ca-file`)."""
    c = open_lab(lab_name).cloud(cloud)
    if not c.ca:
        raise click.ClickException(f"cloud {c.name} has no CA (its agent serves plain HTTP)")
    click.echo(c.ca)


@lab.command(
    "exec", context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False}
)
@name_option
@click.option(
    "--token",
    default="admin",
    show_default=True,
    help="INTERCLOUD_TOKEN in a cloud: admin, or a project (p1, p2).",
)
@click.argument("target")
@click.argument("cmd", nargs=-1, required=True, type=click.UNPROCESSED)
@click.pass_context
def exec_(ctx: click.Context, lab_name: str, token: str, target: str, cmd: tuple[str, ...]) -> None:
    """Run CMD in TARGET: a cloud's gateway (A), a VM (A/vm1) or the underlay router (wan).

    In a cloud, INTERCLOUD_URL and INTERCLOUD_TOKEN point at its agent. Exit status and output
    are the command's."""
    argv = list(cmd[1:] if cmd[:1] == ("--",) else cmd)
    if not argv:
        raise click.UsageError("missing command after --")
    proc = open_lab(lab_name).exec(target, argv, token=token, capture=False)
    ctx.exit(proc.returncode)


@lab.command(
    "openstack", context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False}
)
@name_option
@click.option("--project", default="p1", show_default=True, help="p1, p2 or admin.")
@click.argument("cloud")
@click.argument("args", nargs=-1, required=True, type=click.UNPROCESSED)
@click.pass_context
def openstack_(
    ctx: click.Context, lab_name: str, project: str, cloud: str, args: tuple[str, ...]
) -> None:
    """The unmodified `openstack` CLI as a user of PROJECT in CLOUD (OpenStack lab), e.g.
    `lab openstack A -- --os-cloud A-in-B port list`: clouds CLOUD (home) and CLOUD-in-PEER
    (B's network and compute through the home agent's proxy), the intercloud plugin."""
    lb = open_lab(lab_name)
    if not isinstance(lb, OpenStackLab):
        raise click.UsageError("needs an OpenStack lab (lab up --openstack)")
    c = lb.cloud(cloud)
    peers = tuple(x for x in lb.clouds if x != c.name)
    path = lb.state_dir / c.name / f"clouds-{project}.yaml"
    tenant.write_clouds_yaml(path, tenant.clouds_yaml(lb, c.name, project, peers))
    tenant.install_plugin()
    argv = list(args[1:] if args[:1] == ("--",) else args)
    proc = tenant.openstack(lb, c.name, path, *argv, capture=False)
    ctx.exit(proc.returncode)


@lab.group()
def vm() -> None:
    """Add or remove VMs (namespaces joined to a tenant network or a replica)."""


@vm.command("add")
@name_option
@click.argument("cloud")
@click.argument("vm_name", metavar="NAME")
@click.option(
    "--ip",
    "ip_cidr",
    help="Address of eth0, e.g. 10.10.0.11/24 (required; in an OpenStack lab Neutron chooses).",
)
@click.option("--network", help="A local network of CLOUD (net1, net2).")
@click.option("--replica-of", help="PEER/NETWORK: the replica CLOUD hosts for it, e.g. A/net1.")
@click.option("--mac", help="MAC address of eth0.")
@click.option("--port", "port_id", help="OpenStack lab: an existing Neutron port of CLOUD.")
@click.option("--timeout", default=30.0, show_default=True, help="Seconds to wait for a replica.")
def vm_add(
    lab_name: str,
    cloud: str,
    vm_name: str,
    ip_cidr: str,
    network: str | None,
    replica_of: str | None,
    mac: str | None,
    port_id: str | None,
    timeout: float,
) -> None:
    """Add VM NAME to CLOUD."""
    if port_id is not None:
        _vm_on_port(lab_name, cloud, vm_name, port_id, network or replica_of or ip_cidr or mac)
        return
    if (network is None) == (replica_of is None):
        raise click.UsageError("give exactly one of --network or --replica-of")
    lb = open_lab(lab_name)
    if isinstance(lb, OpenStackLab):
        if ip_cidr or mac:
            raise click.UsageError("in an OpenStack lab Neutron chooses --ip and --mac")
    elif not ip_cidr:
        raise click.UsageError("--ip is required")
    v = lb.add_vm(
        cloud, vm_name, ip_cidr, network=network, replica_of=replica_of, mac=mac, timeout=timeout
    )
    click.echo(f"vm {v.target} {v.ip} on bridge {v.bridge} (ns {v.ns})")


def _vm_on_port(lab_name: str, cloud: str, vm_name: str, port_id: str, other: object) -> None:
    if other:
        raise click.UsageError("--port takes the port's network, address and MAC: give no other")
    lb = open_lab(lab_name)
    if not isinstance(lb, OpenStackLab):
        raise click.UsageError("--port needs an OpenStack lab (lab up --openstack)")
    v = plug_port(lb, cloud, vm_name, port_id)
    click.echo(f"vm {v.target} {v.ip} on port {port_id} (bridge {v.bridge}, ns {v.ns})")


@vm.command("rm")
@name_option
@click.argument("cloud")
@click.argument("vm_name", metavar="NAME")
def vm_rm(lab_name: str, cloud: str, vm_name: str) -> None:
    """Remove VM NAME from CLOUD."""
    open_lab(lab_name).remove_vm(cloud, vm_name)
    click.echo(f"vm {cloud.upper()}/{vm_name} removed")


@lab.command()
@click.argument("action", type=click.Choice(["start", "stop", "restart", "log"]))
@click.argument("cloud")
@name_option
@click.option("--lines", default=50, show_default=True, help="log: lines to show (0 = all).")
def agent(action: str, cloud: str, lab_name: str, lines: int) -> None:
    """Start, stop or restart a cloud's agent, or show its log."""
    lb = open_lab(lab_name)
    if action == "log":
        text = lb.agent_log(cloud, lines=lines or None)
        click.echo(text, nl=not text.endswith("\n"))
    elif action == "stop":
        lb.stop_agent(cloud)
        click.echo(f"agent {cloud.upper()} stopped")
    else:
        pid = lb.start_agent(cloud) if action == "start" else lb.restart_agent(cloud)
        click.echo(f"agent {cloud.upper()} running (pid {pid})")


@lab.command()
@name_option
@click.argument("a")
@click.argument("b")
@click.option(
    "--projects",
    default=",".join(PROJECTS),
    show_default=True,
    help="Comma-separated projects allowed to expand, both ways.",
)
def peer(lab_name: str, a: str, b: str, projects: str) -> None:
    """Peer clouds A and B both ways: peer, link and agreement, shared key."""
    names = [p.strip() for p in projects.split(",") if p.strip()]
    open_lab(lab_name).peer(a, b, names)
    click.echo(f"peered {a.upper()} <-> {b.upper()} for {', '.join(names)}")


@lab.command()
@name_option
@click.argument("host")
@click.option("--network", default="net1", show_default=True, help="HOST's network the VM is on.")
def standalone(lab_name: str, host: str, network: str) -> None:
    """A user-run agent in a VM of cloud HOST (on its NETWORK, with a public address): one
    more cloud, whose network `home` (project p1) is that tenant network."""
    lb = open_lab(lab_name)
    if isinstance(lb, OpenStackLab):
        raise click.UsageError(
            "standalone agents are for the plain lab (lab up without --openstack)"
        )
    letter = lb.add_standalone(host, network=network)
    click.echo(f"standalone agent {letter} running in a VM of {host.upper()} on {network}")


lab.add_command(gateway)

if __name__ == "__main__":
    lab(prog_name="intercloud lab")
