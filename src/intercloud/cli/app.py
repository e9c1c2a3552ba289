"""The root `intercloud` command: its global options, the `agent` command, the `lab` command
(loaded on use), and the rule that every failure ends as one line on stderr,
`error: <message>`, with a non-zero exit code (1; 2 for usage errors); never a traceback.

The API's command groups are added by `cli.main`; none of them imports this module.
"""

from __future__ import annotations

import errno
import importlib
from typing import Any

import click

from intercloud import __version__
from intercloud.cli.context import DEFAULT_URL, CliContext
from intercloud.errors import IntercloudError

# Subcommands imported only when used (so a missing or broken module cannot break the rest of
# the CLI): name -> "module:attribute".
LAZY_COMMANDS: dict[str, str] = {"lab": "intercloud.lab.cli:lab"}


def one_line(text: str) -> str:
    return " ".join(str(text).split())


class CliError(click.ClickException):
    """An error shown as `error: <message>` on stderr, exit code 1."""

    exit_code = 1

    def show(self, file: Any = None) -> None:
        click.echo(f"error: {one_line(self.format_message())}", err=True)


class OneLineUsageError(click.UsageError):
    """A usage error on one line, with a hint to --help (exit code 2)."""

    def __init__(self, original: click.UsageError) -> None:
        super().__init__(original.format_message(), original.ctx)

    def show(self, file: Any = None) -> None:
        hint = ""
        if self.ctx is not None:
            hint = f" (see '{self.ctx.command_path} --help')"
        message = one_line(self.format_message())
        if hint:
            message = message.rstrip(".")
        click.echo(f"error: {message}{hint}", err=True)


def _unavailable(name: str, reason: str) -> click.Command:
    def callback(args: tuple[str, ...]) -> None:
        raise CliError(f"'{name}' is not available in this installation: {reason}")

    return click.Command(
        name,
        callback=callback,
        params=[click.Argument(["args"], nargs=-1, type=click.UNPROCESSED)],
        help=f"(not available: {reason})",
        short_help="(not available in this installation)",
        context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
        add_help_option=False,
    )


class RootGroup(click.Group):
    """Loads LAZY_COMMANDS on use and turns every exception into one `error:` line."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(LAZY_COMMANDS))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        cmd = super().get_command(ctx, cmd_name)
        if cmd is not None or cmd_name not in LAZY_COMMANDS:
            return cmd
        module, _, attr = LAZY_COMMANDS[cmd_name].partition(":")
        try:
            loaded = getattr(importlib.import_module(module), attr)
        except ImportError as exc:
            return _unavailable(cmd_name, one_line(str(exc)) or type(exc).__name__)
        if not isinstance(loaded, click.Command):
            return _unavailable(cmd_name, f"{module}.{attr} is not a click command")
        return loaded

    def make_context(self, *args: Any, **kwargs: Any) -> click.Context:
        try:
            return super().make_context(*args, **kwargs)
        except click.UsageError as exc:
            if isinstance(exc, OneLineUsageError):
                raise
            raise OneLineUsageError(exc) from None

    def invoke(self, ctx: click.Context) -> Any:
        def scrub(text: str) -> str:
            return ctx.obj.scrub(text) if isinstance(ctx.obj, CliContext) else text

        try:
            return super().invoke(ctx)
        except OneLineUsageError:
            raise
        except click.UsageError as exc:
            raise OneLineUsageError(exc) from None
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except IntercloudError as exc:
            raise CliError(scrub(exc.message or type(exc).__name__)) from None
        except OSError as exc:
            if exc.errno == errno.EPIPE:  # stdout closed early (`| head`): click's own handling
                raise
            raise CliError(scrub(f"{type(exc).__name__}: {exc}")) from None
        except Exception as exc:
            raise CliError(scrub(f"{type(exc).__name__}: {exc}")) from None


@click.group(cls=RootGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--url",
    envvar="INTERCLOUD_URL",
    default=DEFAULT_URL,
    show_default=True,
    help="The agent's API (env INTERCLOUD_URL).",
)
@click.option(
    "--token",
    envvar="INTERCLOUD_TOKEN",
    default=None,
    help="Admin or project token (env INTERCLOUD_TOKEN).",
)
@click.option(
    "--cacert",
    envvar="INTERCLOUD_CACERT",
    default=None,
    type=click.Path(dir_okay=False),
    help="PEM file of the CA (or certificate) the agent's certificate must chain to "
    "(env INTERCLOUD_CACERT; default: the system's CAs).",
)
@click.option("--json", "as_json", is_flag=True, help="Print raw JSON instead of tables.")
@click.option(
    "--timeout",
    type=click.FloatRange(min=0.1),
    default=10.0,
    show_default=True,
    help="Seconds to wait for each API answer.",
)
@click.version_option(__version__, prog_name="intercloud")
@click.pass_context
def cli(
    ctx: click.Context,
    url: str,
    token: str | None,
    cacert: str | None,
    as_json: bool,
    timeout: float,
) -> None:
    """Stretch virtual networks between federated clouds."""
    # the caller's CliContext (with its client factory) if it passed one, else a new one
    state = ctx.ensure_object(CliContext)
    state.url, state.token, state.cacert = url, token, cacert
    state.json, state.timeout = as_json, timeout
    if token:
        state.keep_secret(token)
    ctx.call_on_close(state.close)


@cli.command()
@click.option(
    "--config",
    "config_path",
    envvar="INTERCLOUD_CONFIG",
    required=True,
    type=click.Path(dir_okay=False),
    help="The agent's TOML configuration (env INTERCLOUD_CONFIG).",
)
def agent(config_path: str) -> None:
    """Run the agent (REST API, federation, reconciler)."""
    try:
        from intercloud.agent import run
    except ImportError as exc:
        raise CliError(f"the agent is not available in this installation: {exc}") from None
    run(config_path)
