"""The replicas of peers' expansions in this cloud: per replica a project (tagged), a network,
a subnet and placeholder ports for the other clouds' VMs, found again by their tags."""

from __future__ import annotations

import logging
import threading
from functools import partial
from typing import Any

from intercloud.drivers.cloud.base import Network, ReplicaSpec, ReplicaSync
from intercloud.drivers.cloud.openstack.held import HeldAddresses, held_ips, without
from intercloud.drivers.cloud.openstack.networks import Networks
from intercloud.drivers.cloud.openstack.sdk import Sdk
from intercloud.drivers.cloud.openstack.tags import REMOTE_OWNER, TAG, UID_TAG, pools_of, uid_from
from intercloud.errors import CloudError

log = logging.getLogger("intercloud.cloud.openstack")


class Replicas:
    def __init__(self, sdk: Sdk, networks: Networks) -> None:
        self.sdk = sdk
        self.networks = networks
        # placeholder changes and arriving ports (moves.py) one at a time
        self.lock = threading.Lock()
        # networks with a placeholder held back by a live port here (synced every pass)
        self.pending: set[str] = set()
        self.held = HeldAddresses(sdk)
        self._quota_set: dict[str, int] = {}
        # uid -> (spec, network id) of replicas made exactly as specified: a pass then only
        # lists the tagged networks instead of checking each replica's subnet and ports
        self._synced: dict[str, tuple[ReplicaSpec, str]] = {}

    def sync_replicas(self, wanted: list[ReplicaSpec]) -> ReplicaSync:
        out = ReplicaSync()
        conn = self.sdk.conn()
        try:
            tagged = self.sdk.call(
                "listing intercloud networks", lambda: list(conn.network.networks(tags=TAG))
            )
        except CloudError as exc:
            out.errors = {w.uid: exc.message for w in wanted}
            return out
        by_uid = {uid_from(n.tags): n for n in tagged}
        for spec in wanted:
            net = by_uid.get(spec.uid)
            if (
                net is not None
                and self._synced.get(spec.uid) == (spec, net.id)
                and net.id not in self.pending
            ):
                out.interfaces[spec.uid] = net.id  # made as asked, and still there
                continue
            try:
                net_id, changes = self._ensure_replica(spec, net)
                self._synced[spec.uid] = (spec, net_id)
                out.interfaces[spec.uid] = net_id
                out.changes += changes
            except CloudError as exc:
                log.error("replica %s: %s", spec.uid, exc.message)
                out.errors[spec.uid] = exc.message
        keep = {w.uid for w in wanted}
        for uid, net in by_uid.items():
            if uid not in keep:
                self._synced.pop(uid or "", None)
                try:
                    self._remove_replica(net)
                    out.changes += 1
                except CloudError as exc:
                    log.error("removing replica network %s: %s", net.id, exc.message)
        if out.interfaces:
            try:
                out.local_ports = self._local_ports(out.interfaces)
            except CloudError as exc:
                log.error("listing the replicas' ports: %s", exc.message)
        if out.changes:
            self.networks.forget()
        return out

    def _local_ports(self, interfaces: dict[str, str]) -> dict[str, tuple[tuple[str, str], ...]]:
        """Per replica, (mac, ip) of this cloud's own ports on it: one call for all."""
        conn = self.sdk.conn()
        uid_of = {net_id: uid for uid, net_id in interfaces.items()}
        found: dict[str, list[tuple[str, str]]] = {uid: [] for uid in interfaces}
        for port in self.sdk.call(
            "listing the replicas' ports",
            lambda: list(conn.network.ports(network_id=sorted(uid_of))),
        ):
            if port.device_owner == REMOTE_OWNER or port.network_id not in uid_of:
                continue
            for f in port.fixed_ips or []:
                found[uid_of[port.network_id]].append((port.mac_address, f["ip_address"]))
        return {uid: tuple(sorted(p)) for uid, p in found.items()}

    def project(self, spec: ReplicaSpec) -> tuple[Any, int]:
        conn = self.sdk.conn()
        domain = self.sdk.domain()
        changes = 0
        project = self.sdk.call(
            f"finding project {spec.project!r}",
            lambda: conn.identity.find_project(spec.project, domain_id=domain, ignore_missing=True),
        )
        if project is not None and TAG not in (project.tags or []):
            # a local project that happens to be named `<peer>.<project>`: a peer's network
            # in it would let that project's users onto the peer's L2 segment
            raise CloudError(
                f"openstack: project {spec.project!r} exists and was not made by intercloud; "
                "a replica is never put in it"
            )
        if project is None:
            project = self.sdk.call(
                f"creating project {spec.project!r}",
                lambda: conn.identity.create_project(
                    name=spec.project,
                    domain_id=domain,
                    description="replicated by intercloud for a peer cloud's project",
                    tags=[TAG],
                ),
            )
            log.info("made project %s (%s)", spec.project, project.id)
            changes += 1
        if self._quota_set.get(project.id) != spec.max_networks:
            self.sdk.call(
                f"setting the quota of project {spec.project!r}",
                lambda: conn.network.update_quota(
                    project.id, networks=spec.max_networks, subnets=spec.max_networks
                ),
            )
            self._quota_set[project.id] = spec.max_networks
        return project, changes

    def _ensure_replica(self, spec: ReplicaSpec, net: Any) -> tuple[str, int]:
        conn = self.sdk.conn()
        project, changes = self.project(spec)
        tags = [TAG, UID_TAG + spec.uid]
        if net is None:
            net = self.sdk.call(
                f"creating network {spec.network!r}",
                lambda: conn.network.create_network(
                    name=spec.network, project_id=project.id, description=f"intercloud {spec.uid}"
                ),
            )
            # Tag it at once: a crash before this would leave a network nobody can find, so
            # the description says whose it is too.
            self.sdk.call("tagging the network", lambda: conn.network.set_tags(net, tags))
            log.info("made replica network %s (%s) for %s", spec.network, net.id, spec.uid)
            changes += 1
        subnets = self.sdk.call(
            "listing the replica's subnets", lambda: list(conn.network.subnets(network_id=net.id))
        )
        subnet = next((sn for sn in subnets if sn.cidr == spec.cidr), None)
        pools = [{"start": a, "end": b} for a, b in spec.pools]
        if subnet is None:
            body: dict[str, Any] = {
                "network_id": net.id,
                "project_id": project.id,
                "ip_version": 4,
                "cidr": spec.cidr,
                "gateway_ip": spec.gateway,
                "enable_dhcp": True,
                "name": f"{spec.network}-replica",
            }
            if pools:
                body["allocation_pools"] = pools
            subnet = self.sdk.call(
                f"creating subnet {spec.cidr}", lambda: conn.network.create_subnet(**body)
            )
            self.sdk.call("tagging the subnet", lambda: conn.network.set_tags(subnet, tags))
            changes += 1
        elif pools:
            # our slice, less the addresses held for a VM moving away (held.py)
            sliced = without(spec.pools, held_ips(subnet))
            if list(pools_of(subnet.allocation_pools)) != sliced:
                ranges = [{"start": a, "end": b} for a, b in sliced]
                self.sdk.call(
                    "setting the subnet's allocation pools",
                    lambda: conn.network.update_subnet(subnet, allocation_pools=ranges),
                )
                changes += 1
        changes += self._sync_placeholders(
            net.id, subnet, project.id, set(spec.remote_ports), spec.uid
        )
        return net.id, changes

    def _sync_placeholders(
        self, net_id: str, subnet: Any, project_id: str, want: set[tuple[str, str]], what: str
    ) -> int:
        """Placeholder ports of `net_id` made exactly `want` ((mac, ip) of other clouds' VMs),
        except those whose MAC or IP a live port of this cloud holds (a VM that moved here, or
        away, and whose old port is not deleted yet): `net_id` is then pending, and its
        placeholders are synced again at every pass until it is not. The address of one held
        back stays out of `subnet`'s pool until its placeholder is made (held.py)."""
        with self.lock:
            return self._sync_locked(net_id, subnet, project_id, want, what)

    def _sync_locked(
        self, net_id: str, subnet: Any, project_id: str, want: set[tuple[str, str]], what: str
    ) -> int:
        conn = self.sdk.conn()
        have = {}
        live_macs, live_ips = set(), set()
        for port in self.sdk.call(
            "listing the network's ports", lambda: list(conn.network.ports(network_id=net_id))
        ):
            ips = [f["ip_address"] for f in port.fixed_ips or []]
            if port.device_owner == REMOTE_OWNER:
                have[(port.mac_address, ips[0] if ips else "")] = port
            else:
                live_macs.add((port.mac_address or "").lower())
                live_ips.update(ips)
        held = {(mac, ip) for mac, ip in want if mac.lower() in live_macs or ip in live_ips}
        if held:
            self.pending.add(net_id)
        else:
            self.pending.discard(net_id)
        # out of the pool before the live port may go; back once the placeholder is made
        changes = self.held.reserve(subnet, {ip for _, ip in held})
        for key, port in have.items():
            if key not in want:
                self.sdk.call(
                    "removing a placeholder port", partial(conn.network.delete_port, port)
                )
                changes += 1
        for mac, ip in sorted(want - set(have) - held):
            self.sdk.call(
                f"making a placeholder port for {mac} {ip}",
                partial(
                    conn.network.create_port,
                    network_id=net_id,
                    project_id=project_id,
                    mac_address=mac,
                    fixed_ips=[{"subnet_id": subnet.id, "ip_address": ip}],
                    device_owner=REMOTE_OWNER,
                    name=f"remote {ip}",
                    description=f"intercloud {what}: a VM of another cloud",
                ),
            )
            changes += 1
        return changes + self.held.release(subnet, {ip for _, ip in held})

    def sync_placeholders(self, network: Network, ports: list[tuple[str, str]]) -> int:
        subnet = self.networks.subnet(network)
        changes = self._sync_placeholders(
            network.interface, subnet, subnet.project_id, set(ports), network.name
        )
        if changes:
            self.networks.forget_addressing(network.interface)  # its pool may have changed
        if changes:
            log.info("network %s: placeholders for %d remote port(s)", network.name, len(ports))
        return changes

    def _remove_replica(self, net: Any) -> None:
        """The expansion is gone: its network goes, with every port on it (the placeholders and
        whatever this cloud's VMs had on it), then the project once it holds no replica."""
        conn = self.sdk.conn()
        for port in self.sdk.call(
            "listing the replica's ports", lambda: list(conn.network.ports(network_id=net.id))
        ):
            if port.device_owner == "network:dhcp":
                continue  # Neutron removes it with the network
            self.sdk.call("removing a port", partial(conn.network.delete_port, port))
        self.sdk.call("removing the replica network", lambda: conn.network.delete_network(net))
        log.info("removed replica network %s (%s)", net.name, net.id)
        project_id = net.project_id
        others = self.sdk.call(
            "listing the project's networks",
            lambda: list(conn.network.networks(project_id=project_id)),
        )
        if not others:
            project = self.sdk.call(
                "reading the replicated project",
                lambda: conn.identity.get_project(project_id),
            )
            if TAG in (project.tags or []):
                self.sdk.call("removing the project", lambda: conn.identity.delete_project(project))
                self._quota_set.pop(project_id, None)
                log.info("removed replicated project %s", project.name)
