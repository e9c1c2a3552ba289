"""Typed calls to a peer agent's federation API: one PeerClient per peer, each call returning
the checked value of federation/answers.py and timed into the agent's metrics (by peer and
call: the method's name); `Federation` keeps one client per peer."""

from __future__ import annotations

import base64
import functools
import json
import threading
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from typing import Any, Concatenate, ParamSpec, TypeVar

import httpx

from intercloud.domain import proxy as proxy_rules
from intercloud.domain import text
from intercloud.domain.proxy import Answer as ProxyAnswer
from intercloud.domain.proxy import Call as ProxyCall
from intercloud.errors import Invalid, PeerError
from intercloud.federation import answers, frames
from intercloud.federation.signing import HEADER_NONCE, HEADER_SIGNATURE, sign
from intercloud.federation.transport import Channel, PeerRef, _read_bounded
from intercloud.metrics import Metrics

__all__ = ["Federation", "PeerClient", "PeerRef"]

HEALTH_TIMEOUT = 1.5  # a peer slower than this to answer its health check counts as down
Pairs = Iterable[tuple[str, str]]
P = ParamSpec("P")
R = TypeVar("R")


def _timed(
    call: Callable[Concatenate[PeerClient, P], R],
) -> Callable[Concatenate[PeerClient, P], R]:
    """Record the call's duration, and whether it failed, under its own name."""

    @functools.wraps(call)
    def timed(self: PeerClient, *args: P.args, **kwargs: P.kwargs) -> R:
        started, failed = time.perf_counter(), True
        try:
            answer = call(self, *args, **kwargs)
            failed = False
            return answer
        finally:
            seconds = time.perf_counter() - started
            self.metrics.called(self.peer.name, call.__name__, seconds, failed)

    return timed


def replica_body(
    project: str, network: str, cidr: str, members: Sequence[str], addressing: dict | None
) -> dict[str, object]:
    """What the origin tells a peer of its replica (PUT /replicas/{uid}, confirmations)."""
    body: dict[str, object] = {
        "project": project,
        "network": network,
        "cidr": cidr,
        "members": list(members),
    }
    if addressing is not None:
        body["addressing"] = addressing
    return body


class PeerClient(Channel):
    """The federation calls this agent makes to one peer (api/federation.py answers them)."""

    def __init__(
        self, local_name: str, peer: PeerRef, *, metrics: Metrics | None = None, **channel: Any
    ) -> None:
        """`metrics`: where its calls are timed (the agent's); `channel`: Channel's options."""
        super().__init__(local_name, peer, **channel)
        self.metrics = metrics or Metrics()

    @_timed
    def health(self, family: int | None = None) -> answers.Health:
        """`family` (4 or 6): that of our end of the link; the peer's end must match it."""
        answer = self.request("GET", "/v1/federation/health", timeout=HEALTH_TIMEOUT)
        return answers.health(self.peer.name, answer, family)

    # -- the origin: replicas of our expansions and their VNIs --------------------------------
    @_timed
    def put_replica(
        self,
        uid: str,
        project: str,
        network: str,
        cidr: str,
        members: Sequence[str],
        addressing: dict | None = None,
    ) -> answers.ReplicaView:
        body = replica_body(project, network, cidr, members, addressing)
        return answers.replica(self.peer.name, self.request("PUT", _replica(uid), body))

    @_timed
    def confirm_replicas(
        self, bodies: dict[str, dict[str, object]]
    ) -> dict[str, answers.ReplicaView | None]:
        """Re-check many replicas in one call: uid -> what put_replica would send
        (replica_body). Each uid's view as put_replica would answer it, None where the peer
        refused that one; a uid missing from the answer was not confirmed."""
        replicas = [{"uid": uid, **body} for uid, body in bodies.items()]
        answer = self.request("POST", "/v1/federation/confirmations", {"replicas": replicas})
        return answers.confirmations(self.peer.name, answer, bodies.keys())

    @_timed
    def agree_vni(
        self, uid: str, requested: int | None, exclude: list[int], vnis: tuple[int, int]
    ) -> int:
        """The VNI of the replica's tunnel: in `vnis` (our range), `requested` if given, none
        of `exclude` (those in use here)."""
        body = {"vni": requested, "exclude": exclude, "vni_min": vnis[0], "vni_max": vnis[1]}
        answer = self.request("PUT", _replica(uid) + "/vni", body)
        return answers.vni(self.peer.name, answer, *vnis, requested=requested, exclude=exclude)

    @_timed
    def delete_replica(self, uid: str) -> None:
        answers.accepted(self.peer.name, self.request("DELETE", _replica(uid)), "delete")

    @_timed
    def put_relays(self, uid: str, relays: Pairs, members: Collection[str]) -> answers.Relays:
        """Tell a member the pairs it relays for us; `members` (the network's, ours included)
        are all its answer may name."""
        body = {"relays": [list(p) for p in relays]}
        answer = self.request("PUT", _replica(uid) + "/relays", body)
        return answers.relays(self.peer.name, answer, members)

    @_timed
    def flush(self, uid: str) -> None:
        """Ask a member to forget the MACs its ports of our network learned."""
        answer = self.request("POST", _replica(uid) + "/flush", {})
        answers.accepted(self.peer.name, answer, "flush")

    # -- a member: to the origin, and to the other members ------------------------------------
    @_timed
    def report_ports(self, uid: str, ports: Iterable[Sequence[str]], cidr: str) -> list[list[str]]:
        """Tell the origin the ports of its network's replica here."""
        body = {"ports": [list(p) for p in ports]}
        answer = self.request("PUT", f"/v1/federation/expansions/{uid}/ports", body)
        return answers.ports(self.peer.name, answer, cidr)

    @_timed
    def report_direct(self, uid: str, direct: Sequence[str]) -> list[str]:
        """Tell the origin which members we reach directly; its answer may name only them."""
        body = {"direct": list(direct)}
        answer = self.request("PUT", f"/v1/federation/expansions/{uid}/direct", body)
        return answers.direct(self.peer.name, answer, direct)

    @_timed
    def agree_adjacency(
        self, uid: str, origin: str, exclude: list[int], vnis: tuple[int, int]
    ) -> int:
        """The VNI of our direct tunnel to this member for the network `uid` of `origin`."""
        body = {"origin": origin, "exclude": exclude, "vni_min": vnis[0], "vni_max": vnis[1]}
        answer = self.request("PUT", f"/v1/federation/adjacencies/{uid}", body)
        return answers.adjacency(self.peer.name, answer, *vnis, exclude)

    # -- tenants: their OpenStack calls into our replica of their project ---------------------
    @_timed
    def proxy(self, call: ProxyCall, limit: int, timeout: float) -> ProxyAnswer:
        """Have the peer make `call` in its cloud, in its replica of `call.project`; its
        service's answer, its status and headers checked, its body (Answer.rest) streaming
        as the peer's signed frames arrive, each verified before it is given (frames.py), at
        most `limit` bytes, all within `timeout`. Close Answer.rest to end the call early."""
        body = {
            "project": call.project,
            "service_type": call.service_type,
            "method": call.method,
            "path": call.path,
            "query": [list(p) for p in call.query],
            "headers": [list(h) for h in call.headers],
            "body": base64.b64encode(call.body).decode(),
            "max_answer": limit,
        }
        payload = json.dumps(body).encode()
        name = self.peer.name
        signed = sign(self.local_name, name, self.peer.key, "POST", PROXY_PATH, payload)
        deadline = time.monotonic() + timeout
        resp = self._open(PROXY_PATH, payload, signed, timeout)
        try:
            if resp.headers.get("content-type") != frames.MEDIA_TYPE:
                _read_bounded(resp, name)  # a refusal, signed whole
                self._answer(resp, signed[HEADER_NONCE])  # raises its PeerError
                raise PeerError(f"peer {name}: a proxied answer that is not a stream")
            reader = frames.Reader(
                _raw(resp, name),
                self.peer.key,
                name,
                self.local_name,
                signed[HEADER_NONCE],
                signed[HEADER_SIGNATURE],
                limit=limit,
                deadline=deadline,
            )
            head = _checked_head(name, *reader.head())
        except BaseException:
            resp.close()
            raise
        return ProxyAnswer(head.status, head.headers, rest=_closing(reader.body(), resp))

    def _open(
        self, path: str, payload: bytes, headers: dict[str, str], timeout: float
    ) -> httpx.Response:
        """A signed POST whose answer is left to read as it streams."""
        client = self._client()
        request = client.build_request(
            "POST",
            self.peer.url + path,
            content=payload,
            headers={**headers, "Content-Type": "application/json"},
            timeout=timeout,
        )
        try:
            return client.send(request, stream=True)
        except httpx.HTTPError as exc:
            detail = text.clean(f"{self.peer.url}: {exc}", 300)  # the admin's; users see no URL
            raise PeerError(f"peer {self.peer.name} unreachable", detail=detail) from exc


def _raw(resp: httpx.Response, peer_name: str) -> Iterator[bytes]:
    try:
        yield from resp.iter_bytes()
    except httpx.HTTPError as exc:
        raise frames.BrokenStream(
            f"peer {peer_name}: answer stream broken ({type(exc).__name__})"
        ) from exc


def _closing(body: Iterator[bytes], resp: httpx.Response) -> Iterator[bytes]:
    try:
        yield from body
    finally:
        resp.close()


def _checked_head(peer_name: str, status: Any, headers: Any) -> ProxyAnswer:
    try:
        return proxy_rules.head(status, headers)
    except Invalid as exc:
        raise PeerError(
            f"peer {peer_name}: its proxied answer is not valid ({exc.message})"
        ) from None


PROXY_PATH = "/v1/federation/proxy"


def _replica(uid: str) -> str:
    return f"/v1/federation/replicas/{uid}"


class Federation:
    """One PeerClient per peer, kept between calls (its pooled connections and TLS context)
    and replaced, the old one closed, when the peer's URL, key or pinned certificate changes."""

    def __init__(
        self,
        local_name: str,
        timeout: float = 5.0,
        transport: httpx.BaseTransport | None = None,
        *,
        pinned: Callable[[str], str | None] | None = None,
        plain_http: bool = False,
        metrics: Metrics | None = None,
    ) -> None:
        """`pinned(peer)`: the PEM the peer's certificate must chain to, None for the system's
        CAs; `plain_http`: http:// federation URLs are allowed (the agent serves plain HTTP);
        `transport`: in-process calls (tests); `metrics`: where calls are timed (the agent's)."""
        self.local_name = local_name
        self.timeout = timeout
        self.transport = transport
        self.pinned = pinned
        self.plain_http = plain_http
        self.metrics = metrics or Metrics()
        self._clients: dict[str, PeerClient] = {}
        self._lock = threading.Lock()

    def peer(self, ref: PeerRef) -> PeerClient:
        pem = None
        if ref.url.startswith("https://") and self.transport is None and self.pinned:
            pem = self.pinned(ref.name)  # read each time: an admin may pin another one
        with self._lock:
            client = self._clients.get(ref.name)
            if client is not None and (client.peer, client.pem) == (ref, pem):
                return client
            if client is not None:
                client.close()
            client = PeerClient(
                self.local_name,
                ref,
                pem=pem,
                timeout=self.timeout,
                transport=self.transport,
                plain_http=self.plain_http,
                metrics=self.metrics,
            )
            self._clients[ref.name] = client
            return client

    def close(self) -> None:
        with self._lock:
            for client in self._clients.values():
                client.close()
            self._clients.clear()
