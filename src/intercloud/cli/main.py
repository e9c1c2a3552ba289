"""The `intercloud` command assembled: the root command (`cli.app`) with the API's command
groups, and the console entry point."""

from __future__ import annotations

import sys

import click

from intercloud.cli import admin, charon_config, context, diagnose, policies, status, user
from intercloud.cli.app import cli, one_line

_COMMANDS = (*admin.GROUPS, *user.GROUPS, *policies.GROUPS, status.status, diagnose.diagnose)
for _command in (*_COMMANDS, charon_config.charon_config):
    cli.add_command(_command)


def main(
    argv: list[str] | None = None, *, make_client: context.ClientFactory = context.make_client
) -> None:
    """Console entry point; `make_client` builds the API client (tests hand in a fake)."""
    state = context.CliContext(make_client=make_client)
    try:
        cli.main(args=argv, prog_name="intercloud", obj=state)
    except Exception as exc:  # last resort: click already handled its own errors
        click.echo(f"error: {type(exc).__name__}: {one_line(str(exc))}", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
