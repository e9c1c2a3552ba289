"""A lab VM on a Neutron port that already exists: one a tenant made, e.g. through the tenant
API proxy on the replica of its network (`intercloud lab vm add B b1 --port <port id>`). The
VM takes the port's MAC and address and is plugged into br-int as the OVS agent would plug it.

Removing the VM (`lab vm rm`) deletes the port too, unless its owner deleted it first."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from intercloud.lab import namespaces, ovs_instance
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
    net_id = port["network_id"]
    with lab._edit() as st:
        vlans = st.clouds[letter].vlans
        tag = vlans.setdefault(net_id, 10 * c.index + len(vlans) + 1)
    assert c.ovs_dir is not None
    inst = ovs_instance.OvsInstance(c.ns, Path(c.ovs_dir))
    vm_ns, veth = lab.vm_ns(letter, name), f"v{letter.lower()}{name}"
    mac = port["mac_address"]
    try:
        ovs_instance.add_vm(inst, vm_ns, veth, tag, net_id, f"{ips[0]}/24", mac=mac, mtu=mtu)
    except BaseException:
        namespaces.delete_namespace(vm_ns)
        raise
    vm = VmRecord(
        cloud=letter,
        name=name,
        ns=vm_ns,
        ip=f"{ips[0]}/24",
        mac=mac,
        mtu=mtu,
        port_id=port_id,
        network_id=net_id,
        veth=veth,
        bridge=f"br-int vlan {tag}",
        network=f"port {port_id}",
    )
    with lab._edit() as st:
        st.vms[f"{letter}/{name}"] = vm
    return vm
