"""`intercloud charon-config`: the strongswan.conf of each charon the agent drives on this host
(one per lane), and the agent's matching [ipsec] section. Offline: it reads and writes nothing
but stdout (docs/deploy.md)."""

from __future__ import annotations

import click

from intercloud.drivers.ipsec import charon_conf
from intercloud.drivers.ipsec.lane_layout import MAX_LANES


@click.command("charon-config")
@click.option(
    "--lanes",
    type=click.IntRange(1, MAX_LANES),
    default=1,
    show_default=True,
    help="Charons sharing the encryption (lanes need --libipsec).",
)
@click.option(
    "--lane",
    type=click.IntRange(0, MAX_LANES - 1),
    default=None,
    help="Print only this lane's strongswan.conf (0 .. lanes-1).",
)
@click.option(
    "--libipsec",
    is_flag=True,
    help="Userspace ESP (kernel-libipsec), for kernels without ESP and for lanes; "
    "default: the kernel's ESP.",
)
@click.option(
    "--vici-dir",
    default=charon_conf.VICI_DIR,
    show_default=True,
    type=click.Path(file_okay=False),
    help="Directory of the VICI sockets (charon-<lane>.vici).",
)
def charon_config(lanes: int, lane: int | None, libipsec: bool, vici_dir: str) -> None:
    """Print the charon settings the agent needs: one strongswan.conf per lane (with --lane,
    that lane's alone, ready for /etc/intercloud/charon-<lane>.conf), then the agent's [ipsec]
    section."""
    if lanes > 1 and not libipsec:
        raise click.UsageError("--lanes above 1 needs --libipsec (kernel ESP uses one charon)")
    if any(c.isspace() or c in '"{}#=' for c in vici_dir):
        raise click.BadParameter("unusable in strongswan.conf", param_hint="--vici-dir")
    if lane is not None:
        if lane >= lanes:
            raise click.BadParameter(f"{lane} is not below --lanes {lanes}", param_hint="--lane")
        click.echo(charon_conf.host_conf_text(lane, libipsec=libipsec, vici_dir=vici_dir), nl=False)
        return
    for k in range(lanes):
        click.echo(f"# ==> {charon_conf.conf_path(k)} <==")
        click.echo(charon_conf.host_conf_text(k, libipsec=libipsec, vici_dir=vici_dir))
    click.echo("# ==> the agent's /etc/intercloud/agent.toml <==")
    click.echo(charon_conf.ipsec_section(lanes, vici_dir), nl=False)
