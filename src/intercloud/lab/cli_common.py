"""What the `intercloud lab` commands share: opening a lab by name, the --name option, and
the group that turns lab errors into one line and exit status 1."""

from __future__ import annotations

import subprocess
from typing import Any

import click

from intercloud.errors import IntercloudError
from intercloud.lab.openstack.lab import OpenStackLab
from intercloud.lab.topology import Lab


def open_lab(lab_name: str) -> Lab:
    """The lab by its name, as the kind it was brought up as (plain or OpenStack)."""
    plain = Lab(lab_name)
    try:
        openstack = plain.exists() and plain.state().openstack
    except ValueError:
        openstack = False
    return OpenStackLab(lab_name) if openstack else plain


class LabGroup(click.Group):
    """Turns lab errors into one line on stderr and exit status 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except IntercloudError as exc:
            raise click.ClickException(exc.message) from exc
        except (OSError, subprocess.SubprocessError) as exc:
            raise click.ClickException(str(exc)) from exc


def name_option(f: Any) -> Any:
    return click.option(
        "--name",
        "lab_name",
        default="icl",
        show_default=True,
        envvar="INTERCLOUD_LAB",
        help="Lab name (1-8 lowercase letters/digits; env INTERCLOUD_LAB).",
    )(f)
