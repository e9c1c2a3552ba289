"""Calls to the agent's API over the `openstack` CLI's keystoneauth1 session (it adds the
user's token and the CA of the cloud's config); an error answer becomes one readable line."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from osc_lib import exceptions


class Client:
    def __init__(self, session: Any, endpoint: str) -> None:
        self.session = session
        self.endpoint = endpoint.rstrip("/")

    def call(self, method: str, *parts: str, body: Any = None) -> Any:
        path = "/".join(quote(p, safe="") for p in parts)
        kwargs: dict[str, Any] = {"raise_exc": False, "headers": {"Accept": "application/json"}}
        if body is not None:
            kwargs["json"] = body
        resp = self.session.request(f"{self.endpoint}/v1/{path}", method, **kwargs)
        if resp.status_code >= 400:
            raise exceptions.CommandError(f"intercloud: HTTP {resp.status_code}: {_said(resp)}")
        if resp.status_code == 204 or not resp.content:
            return None
        try:
            return resp.json()
        except ValueError as exc:
            raise exceptions.CommandError("intercloud: the agent answered no JSON") from exc


def _said(resp: Any) -> str:
    try:
        data = resp.json()
    except ValueError:
        return resp.text[:200]
    err = data.get("error") if isinstance(data, dict) else None
    if isinstance(err, dict) and err.get("message"):
        return str(err["message"])[:500]
    return str(data)[:200]
