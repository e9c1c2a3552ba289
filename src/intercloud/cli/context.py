"""What every command gets through `click.pass_obj`: where the agent is, how to answer (table
or JSON), the secrets no output may show, how often `--wait` polls, and the API client, built
on first use by the client factory it was given (tests hand in one that returns a client on an
`httpx.MockTransport`: `CliRunner().invoke(cli, args, obj=CliContext(make_client=...))`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from intercloud.api_client import ApiClient

DEFAULT_URL = "https://127.0.0.1:8700"

# (url, token, timeout, cacert) -> the client of the agent's API
ClientFactory = Callable[[str, str | None, float, str | None], ApiClient]


def make_client(
    url: str, token: str | None, timeout: float, cacert: str | None = None
) -> ApiClient:
    """The client on the real network."""
    return ApiClient(url, token, timeout=timeout, cacert=cacert)


@dataclass
class CliContext:
    """Filled from the global options by the root command (`cli.app`)."""

    make_client: ClientFactory = make_client
    url: str = DEFAULT_URL
    token: str | None = None
    json: bool = False
    timeout: float = 10.0
    cacert: str | None = None
    secrets: list[str] = field(default_factory=list)
    poll_interval: float = 1.0  # seconds between polls of `--wait` (tests make it tiny)
    _client: ApiClient | None = None

    @property
    def client(self) -> ApiClient:
        if self._client is None:
            self._client = self.make_client(self.url, self.token, self.timeout, self.cacert)
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def keep_secret(self, value: str) -> None:
        """No output of this command will show `value`."""
        if value:
            self.secrets.append(value)

    def scrub(self, text: str) -> str:
        for secret in self.secrets:
            if secret:
                text = text.replace(secret, "***")
        return text
