"""Admin API: a VM's port arriving here from another cloud of an expanded network (live
migration). The orchestrator (the operator's tooling, Nova's side of a cross-cloud migration)
asks the destination's agent before the VM switches over: the placeholder that stood for the VM
here gives way to a real port with the same MAC and IP, which the VM then plugs into; the old
port is deleted at the source afterwards. The agents follow: placeholders swap, and every member
forgets where the MAC was learned (reconciler/moves.py)."""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool

from intercloud.api import auth
from intercloud.api.schemas import Strict
from intercloud.errors import Invalid
from intercloud.service import user as user_svc

router = APIRouter(prefix="/v1", tags=["admin"], dependencies=[Depends(auth.admin_async)])
user_router = APIRouter(prefix="/v1", tags=["user"])
_MAC_RE = re.compile(r"[0-9a-f]{2}(:[0-9a-f]{2}){5}")
_NETWORK_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,63}")  # the cloud driver checks more


class MoveIn(Strict):
    network: str  # the Neutron network id here (the origin's network or a replica)
    mac: str
    ip: str


def _checked(body: MoveIn) -> tuple[str, str, str]:
    network = body.network
    if not _NETWORK_RE.fullmatch(network):
        raise Invalid("network: must be a network id (a Neutron UUID)", field="network")
    mac = body.mac.lower()
    if not _MAC_RE.fullmatch(mac) or int(mac[:2], 16) & 1:
        raise Invalid("mac: must be a unicast MAC address like fa:16:3e:00:00:01", field="mac")
    try:
        ip = ipaddress.IPv4Address(body.ip)
    except ValueError:
        raise Invalid("ip: must be an IPv4 address", field="ip") from None
    return network, mac, str(ip)


@router.post("/moves", status_code=201)
async def receive_port(body: MoveIn, request: Request) -> dict[str, Any]:
    c = auth.ctx(request)
    network, mac, ip = _checked(body)
    port = await run_in_threadpool(c.cloud.receive_port, network, mac, ip)
    c.reconciler.trigger()
    return port


@user_router.get("/expansions/{uid}/moves")
def list_moves(
    uid: str, request: Request, project: str = Depends(auth.project)
) -> list[dict[str, Any]]:
    """The expansion's recent moves (newest last), as its origin saw them: a VM's MAC that
    showed up in another cloud of the network (the members were asked to forget it)."""
    c = auth.ctx(request)
    with c.store.session() as s:
        exp_id = user_svc.get_expansion(s, project, uid).id
    return c.reconciler.recent_moves(exp_id)
