"""The `intercloud` command: a client of the agent's REST API, plus `agent` (run the agent) and
`lab` (lab tools, loaded on use).

Every failure ends as one line on stderr, `error: <message>`, and a non-zero exit code (1; 2
for usage errors); never a traceback.
"""

from __future__ import annotations

import errno
import importlib
import sys
from dataclasses import dataclass, field
from typing import Any

import click

from intercloud import __version__
from intercloud.cli import expansions as expansions_cli
from intercloud.cli import output, resources
from intercloud.cli import policies as policies_cli
from intercloud.api_client import ApiClient
from intercloud.errors import Forbidden, IntercloudError

DEFAULT_URL = "https://127.0.0.1:8700"

# Subcommands imported only when used (so a missing or broken module cannot break the rest of
# the CLI): name -> "module:attribute".
LAZY_COMMANDS: dict[str, str] = {"lab": "intercloud.lab.cli:lab"}


def make_client(
    url: str, token: str | None, timeout: float, cacert: str | None = None
) -> ApiClient:
    """Builds the API client for a command; tests replace it to hand in a MockTransport."""
    return ApiClient(url, token, timeout=timeout, cacert=cacert)


@dataclass
class State:
    url: str = DEFAULT_URL
    token: str | None = None
    json: bool = False
    timeout: float = 10.0
    cacert: str | None = None
    secrets: list[str] = field(default_factory=list)
    _client: ApiClient | None = None

    @property
    def client(self) -> ApiClient:
        if self._client is None:
            # looked up at call time, so a monkeypatched make_client takes effect
            make = sys.modules[__name__].make_client
            self._client = make(self.url, self.token, self.timeout, self.cacert)
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def scrub(self, text: str) -> str:
        for secret in self.secrets:
            if secret:
                text = text.replace(secret, "***")
        return text


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


class CliError(click.ClickException):
    """An error shown as `error: <message>` on stderr, exit code 1."""

    exit_code = 1

    def show(self, file: Any = None) -> None:
        click.echo(f"error: {_one_line(self.format_message())}", err=True)


class OneLineUsageError(click.UsageError):
    """A usage error on one line, with a hint to --help (exit code 2)."""

    def __init__(self, original: click.UsageError) -> None:
        super().__init__(original.format_message(), original.ctx)

    def show(self, file: Any = None) -> None:
        hint = ""
        if self.ctx is not None:
            hint = f" (see '{self.ctx.command_path} --help')"
        message = _one_line(self.format_message())
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
            return _unavailable(cmd_name, _one_line(str(exc)) or type(exc).__name__)
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
            return ctx.obj.scrub(text) if isinstance(ctx.obj, State) else text

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
            if exc.errno == errno.EPIPE:
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
    state = State(url=url, token=token, json=as_json, timeout=timeout, cacert=cacert)
    if token:
        state.secrets.append(token)
    ctx.obj = state
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


@cli.command(short_help="Agent health, or your project's expansions.")
@click.pass_obj
def status(state: State) -> None:
    """The agent's health (admin token) or your project's expansions (project token)."""
    client = state.client
    try:
        st = client.get("/v1/status")
    except Forbidden:
        expansions = client.get("/v1/expansions") or []
        if state.json:
            output.print_json({"expansions": expansions})
            return
        columns = [("PROJECT", "project"), *expansions_cli.EXPANSION_COLUMNS]
        output.print_table(expansions, columns, title="Expansions", empty="no expansions")
        return
    replicas = client.get("/v1/replicas") or []
    if state.json:
        output.print_json({**st, "replicas": st.get("replicas", replicas)})
        return
    _print_status(st, replicas)


def _print_status(st: dict[str, Any], replicas: list[dict[str, Any]]) -> None:
    output.print_object(
        {
            "agent": st.get("agent"),
            "version": st.get("version"),
            "dataplane": st.get("dataplane"),
            "ipsec": " ".join(str(v) for v in (st.get("ipsec") or {}).values() if v) or "-",
            "counts": st.get("counts"),
        },
        title="Agent",
    )
    output.print_object(st.get("reconciler") or {}, title="Reconciler")
    output.print_table(
        st.get("links") or [],
        [
            ("PEER", "peer"),
            ("STATE", lambda link: output.link_state(link)[0]),
            ("IPSEC", output.ipsec_summary),
            ("REASON", lambda link: output.link_state(link)[1]),
            ("CHECKED", lambda link: output.link_state(link)[2]),
        ],
        title="Links",
        empty="no links",
    )
    output.print_table(replicas, resources.REPLICA_COLUMNS, title="Replicas", empty="no replicas")


for _group in resources.GROUPS + expansions_cli.GROUPS + policies_cli.GROUPS:
    cli.add_command(_group)


def main(argv: list[str] | None = None) -> None:
    """Console entry point."""
    try:
        cli.main(args=argv, prog_name="intercloud")
    except Exception as exc:  # last resort: click already handled its own errors
        click.echo(f"error: {type(exc).__name__}: {_one_line(str(exc))}", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
