"""Signs every answer to an authenticated federation call (federation/signing.py).

An ASGI middleware: it holds the answer's head until the body is complete, then adds
X-Intercloud-Answer-Signature over status, body, both agents' names and the request's nonce.
Which peer called, with which key and nonce, is left in the request's state by `auth.peer`;
answers to calls that never got that far (401s) carry no signature: there is no key to
sign with, and the caller treats them as refusals anyway. An answer of signed frames (a
proxied answer, federation/frames.py) signs itself as it streams: it passes untouched."""

from __future__ import annotations

from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from intercloud.api.auth import FEDERATION_STATE
from intercloud.federation import frames, signing

PREFIX = "/v1/federation/"


def _framed(head: Message) -> bool:
    for name, value in head.get("headers", []):
        if name.lower() == b"content-type":
            return bool(value.split(b";")[0].strip() == frames.MEDIA_TYPE.encode())
    return False


class AnswerSigning:
    def __init__(self, app: ASGIApp, agent_name: str) -> None:
        self.app = app
        self.agent_name = agent_name

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(PREFIX):
            await self.app(scope, receive, send)
            return
        state: dict[str, Any] = scope.setdefault("state", {})
        head: Message | None = None
        chunks: list[bytes] = []

        async def hold(message: Message) -> None:
            nonlocal head
            if message["type"] == "http.response.start":
                if _framed(message):
                    await send(message)  # its body passes too: `head` stays None
                    return
                head = message
                return
            if message["type"] != "http.response.body" or head is None:
                await send(message)
                return
            chunks.append(message.get("body", b""))
            if message.get("more_body", False):
                return
            body = b"".join(chunks)
            who = state.get(FEDERATION_STATE)
            headers = list(head.get("headers", []))
            if who is not None:
                peer, key, nonce = who
                sig = signing.answer_signature(
                    key, self.agent_name, peer, nonce, head["status"], body
                )
                headers.append((signing.HEADER_ANSWER_SIGNATURE.lower().encode(), sig.encode()))
            await send({**head, "headers": headers})
            await send({"type": "http.response.body", "body": body, "more_body": False})

        await self.app(scope, receive, hold)
