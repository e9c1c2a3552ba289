"""A peer's tenant calls, made in this cloud as its replicated project (`<origin>.<project>`)
and nothing else.

How the agent acts for that project: its own service user is given the `member` role on the
replicated project (which it made itself, tagged `intercloud`), and asks Keystone for a token
scoped to that project. Such a token carries only that project's roles: the service user's
admin role on its own project does not come with it, so the services see a member of
`A.p1` — another project's objects are 404 as for any member, admin-only calls are 403.
Chosen over an application credential made at replication (a secret per project to store,
rotate and protect, for the same scope) and over a Keystone trust (it needs a trustor user of
the project, which a replicated project does not have). The role is only ever granted on a
project the agent made (tag checked), and goes with the project when the replica is removed.

The call goes to the endpoint of its service type in this cloud's catalog (the configured
interface and region), with the project's token and only the headers domain/proxy.py lets
through; the answer is passed on as it streams (Answer.rest), up to a limit and within the
call's timeout, never held whole."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import httpx

from intercloud.domain.proxy import ANSWER_HEADERS, Answer, Call
from intercloud.drivers.cloud.openstack.sdk import Sdk
from intercloud.drivers.cloud.openstack.tags import TAG
from intercloud.errors import CloudError, Forbidden

if TYPE_CHECKING:
    from intercloud.drivers.cloud import Section

log = logging.getLogger("intercloud.cloud.openstack")


class AnswerTooLarge(CloudError):
    status_code = 502
    code = "answer_too_large"


class ProjectProxy:
    def __init__(self, sdk: Sdk, cfg: Section, http: httpx.Client | None = None) -> None:
        self.sdk = sdk
        self.cfg = cfg
        self._http = http
        self._sessions: dict[str, Any] = {}  # project name -> keystoneauth1 Session
        self._lock = threading.Lock()

    def _client(self) -> httpx.Client:
        with self._lock:
            if self._http is None:
                self._http = httpx.Client(follow_redirects=False)
            return self._http

    def forward(self, project: str, call: Call, limit: int, timeout: float) -> Answer:
        session = self._session(project)
        token, endpoint = self._token_and_endpoint(session, project, call.service_type)
        headers = dict(call.headers)
        headers["X-Auth-Token"] = token
        url = endpoint.rstrip("/") + "/" + call.path
        what = f"the {call.service_type} service"
        deadline = time.monotonic() + timeout
        client = self._client()
        request = client.build_request(
            call.method,
            url,
            params=list(call.query),
            content=call.body if call.body else None,
            headers=headers,
            timeout=timeout,
        )
        try:
            resp = client.send(request, stream=True)
        except httpx.HTTPError as exc:
            raise CloudError(f"{what} is unreachable ({type(exc).__name__})") from exc
        if resp.status_code == 401:
            session.invalidate()  # a revoked token: the next call gets a new one
        kept = tuple((k.lower(), v) for k, v in resp.headers.items() if k.lower() in ANSWER_HEADERS)
        return Answer(resp.status_code, kept, rest=_stream(resp, limit, deadline, what))

    def _token_and_endpoint(self, session: Any, project: str, service_type: str) -> tuple[str, str]:
        from keystoneauth1 import exceptions as ks

        try:
            token = session.get_token()
        except ks.ClientException as exc:
            with self._lock:
                self._sessions.pop(project, None)
            raise CloudError(
                f"openstack: no token for project {project!r} ({type(exc).__name__})"
            ) from exc
        try:
            endpoint = session.get_endpoint(
                service_type=service_type,
                interface=self.cfg.interface,
                region_name=self.cfg.region_name,
            )
        except ks.ClientException:
            endpoint = None
        if not endpoint:
            raise CloudError(f"service_type: this cloud's catalog has no {service_type!r} endpoint")
        return str(token), str(endpoint)

    def _session(self, project: str) -> Any:
        with self._lock:
            found = self._sessions.get(project)
        if found is not None:
            return found
        self._grant(project)
        from keystoneauth1 import session as ks_session
        from keystoneauth1.identity import v3

        c = self.cfg
        auth = v3.Password(
            auth_url=c.auth_url,
            username=c.username,
            password=c.password,
            user_domain_name=c.user_domain_name,
            project_name=project,
            project_domain_name=c.project_domain_name,
        )
        made = ks_session.Session(auth=auth)
        with self._lock:
            return self._sessions.setdefault(project, made)

    def _grant(self, project: str) -> None:
        """The member role for our service user on the replicated project (idempotent)."""
        conn = self.sdk.conn()
        domain = self.sdk.domain()
        found = self.sdk.call(
            f"finding project {project!r}",
            lambda: conn.identity.find_project(project, domain_id=domain, ignore_missing=True),
        )
        if found is None or TAG not in (found.tags or []):
            # not made yet, or a local project of that name: never act in it
            raise Forbidden(
                f"project: {project!r} is not a replicated project here", field="project"
            )
        role = self.sdk.call(
            f"finding role {self.cfg.member_role!r}",
            lambda: conn.identity.find_role(self.cfg.member_role, ignore_missing=False),
        )
        user = conn.current_user_id
        self.sdk.call(
            f"granting our service user the member role on {project!r}",
            lambda: conn.identity.assign_project_role_to_user(found, user, role),
        )
        log.info("proxy: acting in project %s as a member", project)


def _stream(resp: httpx.Response, limit: int, deadline: float, what: str) -> Iterator[bytes]:
    """The answer's body as it arrives; closed (the connection given back) when done, cut or
    closed early by whoever reads it."""
    size = 0
    try:
        for chunk in resp.iter_bytes():
            size += len(chunk)
            if size > limit:
                raise AnswerTooLarge(f"the answer of {what} is larger than {limit} bytes")
            if time.monotonic() > deadline:
                raise CloudError(f"{what} took longer than the call's timeout to answer")
            yield chunk
    except httpx.HTTPError as exc:
        raise CloudError(f"{what} failed mid-answer ({type(exc).__name__})") from exc
    finally:
        resp.close()
