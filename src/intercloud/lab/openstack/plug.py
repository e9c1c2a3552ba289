"""A lab VM on a Neutron port that already exists: one a tenant made, e.g. through the tenant
API proxy on the replica of its network (`intercloud lab vm add B b1 --port <port id>`). The
VM takes the port's MAC and address and is plugged into br-int as the OVS agent would plug it.

Removing the VM (`lab vm rm`) deletes the port too, unless its owner deleted it first."""

from __future__ import annotations

from typing import TYPE_CHECKING

from intercloud.lab.nsexec import LabError
from intercloud.lab.openstack.api import OpenStackApiError
from intercloud.lab.state import VmRecord

if TYPE_CHECKING:
    from intercloud.lab.openstack.lab import OpenStackLab


def plug_port(lab: OpenStackLab, cloud: str, name: str, port_id: str) -> VmRecord:
    c = lab.cloud(cloud)
    letter = c.name
    try:
        with lab.services(letter).api() as api:
            token = api.admin_token()
            port = api.get(token, "ports", port_id)
            mtu = api.get(token, "networks", port["network_id"])["mtu"]
    except OpenStackApiError as exc:
        raise LabError(f"cloud {letter}: no port {port_id!r} ({exc})") from exc
    ips = [f["ip_address"] for f in port.get("fixed_ips") or [] if ":" not in f["ip_address"]]
    if not ips:
        raise LabError(f"port {port_id} has no IPv4 address")
    got = {"id": port_id, "mac": port["mac_address"], "ip": ips[0], "mtu": mtu}
    return lab.plug(letter, name, got, port["network_id"], network=f"port {port_id}")
