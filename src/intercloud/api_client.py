"""The HTTP client of the agent's REST API (docs/api.md), used by the CLI.

Answers are parsed JSON (None for an empty answer such as 204); error answers become the
matching `intercloud.errors` exception (through `errors.from_answer`, the one mapping) carrying
the server's message, and transport failures become an `IntercloudError` with one readable line.
"""

from __future__ import annotations

import re
import ssl
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from intercloud import __version__, errors, tls
from intercloud.errors import IntercloudError, Invalid

_ERRNO_PREFIX = re.compile(r"^\[Errno -?\d+\]\s*")


def path(*parts: object) -> str:
    """`path("v1", "peers", name)` → `/v1/peers/<name>`, each part percent-encoded."""
    return "/" + "/".join(quote(str(p), safe="") for p in parts)


def _reason(exc: BaseException) -> str:
    """The innermost OS-level reason of a transport error, e.g. `connection refused`."""
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, tls.CertificateNotTrusted):
            return str(cur)
        if isinstance(cur, OSError) and cur.strerror:
            return cur.strerror[0].lower() + cur.strerror[1:]
        cur = cur.__cause__ or cur.__context__
    text = _ERRNO_PREFIX.sub("", str(exc).strip()) or type(exc).__name__
    text = " ".join(text.split())
    return text[0].lower() + text[1:]


def _error_from(resp: httpx.Response) -> IntercloudError:
    """The exception for an error answer, with the server's message and field (or, when the
    body says nothing usable, the status line and the start of the body)."""
    try:
        body = resp.json()
    except ValueError:
        body = None
    message, field = errors.said(body)
    if not message:
        text = " ".join(resp.text.split())[:200]
        message = f"HTTP {resp.status_code} {resp.reason_phrase}" + (f": {text}" if text else "")
    return errors.from_answer(resp.status_code, message, field=field)


def _verify(url: str, cacert: str | None) -> ssl.SSLContext | bool:
    """Over https: trust the CA (or the agent's own certificate) in `cacert`, else the
    system's CAs; TLS 1.2 at least."""
    if not url.startswith("https://"):
        return True
    pem = None
    if cacert:
        try:
            pem = tls.check_pem(Path(cacert).read_text(), "cacert")
        except OSError as exc:
            raise IntercloudError(f"--cacert {cacert}: {exc.strerror or exc}") from None
        except Invalid as exc:
            raise IntercloudError(f"--cacert {cacert}: {exc.message}") from None
    return tls.client_context(pem, who=f"the agent at {url}")


class ApiClient:
    """Synchronous client; `transport` lets tests pass an `httpx.MockTransport`; `cacert`: a
    PEM file of the CA (or certificate) the agent's certificate must chain to."""

    def __init__(
        self,
        url: str,
        token: str | None = None,
        *,
        timeout: float = 10.0,
        transport: httpx.BaseTransport | None = None,
        cacert: str | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        headers = {"Accept": "application/json", "User-Agent": f"intercloud/{__version__}"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        verify = _verify(self.url, cacert) if transport is None else True
        self._http = httpx.Client(
            base_url=self.url, headers=headers, timeout=timeout, transport=transport, verify=verify
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(self, method: str, path: str, body: Any = None) -> Any:
        try:
            if body is None:
                resp = self._http.request(method, path)
            else:
                resp = self._http.request(method, path, json=body)
        except httpx.TimeoutException as exc:
            raise IntercloudError(
                f"the agent at {self.url} did not answer within {self.timeout:g}s ({_reason(exc)})"
            ) from None
        except httpx.TransportError as exc:
            raise IntercloudError(f"cannot reach the agent at {self.url}: {_reason(exc)}") from None
        if resp.status_code >= 400:
            raise _error_from(resp)
        if resp.status_code == 204 or not resp.content:
            return None
        try:
            return resp.json()
        except ValueError:
            raise IntercloudError(
                f"the agent at {self.url} answered {method} {path} with something that is not "
                f"JSON (HTTP {resp.status_code})"
            ) from None

    def get(self, path: str) -> Any:
        return self.request("GET", path)

    def post(self, path: str, body: Any) -> Any:
        return self.request("POST", path, body)

    def patch(self, path: str, body: Any) -> Any:
        return self.request("PATCH", path, body)

    def put(self, path: str, body: Any) -> Any:
        return self.request("PUT", path, body)

    def delete(self, path: str) -> Any:
        return self.request("DELETE", path)
