"""OpenStack mode: users are Keystone tokens, expandable networks are Neutron networks, and the
replicas of peers' expansions are a project, a network, a subnet and placeholder ports made in
this cloud's Keystone and Neutron, tagged so that they can be found and cleaned.

Addresses never clash between clouds: every member of a network hands out addresses only from
its own slice of the subnet (split allocation pools; the origin decides the slices). Each cloud
keeps its own DHCP: Neutron's dnsmasq answers only the MACs of its own ports. The gateway stays
at the origin: the replica's subnet names the origin's gateway address and has no router.
Placeholder ports (device_owner `intercloud:remote`) stand for the VMs of the other clouds, in
the replicated project's default security group, so rules that admit "the same group" admit them
and no local port can take their addresses.

Modules: sdk.py (the connection and its calls), keystone.py (tokens -> principals),
networks.py (expandable networks, addressing), replicas.py (peers' replicas), tags.py,
driver.py (OpenStackCloud).
"""

from intercloud.drivers.cloud.openstack.driver import OpenStackCloud

__all__ = ["OpenStackCloud"]
