"""OpenStack mode: users are Keystone tokens, expandable networks are Neutron networks, and the
replicas of peers' expansions are a project, a network, a subnet and placeholder ports made in
this cloud's Keystone and Neutron, tagged so that they can be found and cleaned.

Addresses never clash between clouds: every member of a network hands out addresses only from
its own slice of the subnet (split allocation pools; the origin decides the slices). Each cloud
keeps its own DHCP: Neutron's dnsmasq answers only the MACs of its own ports. The gateway stays
at the origin: the replica's subnet names the origin's gateway address and has no router.
Placeholder ports (device_owner `intercloud:remote`) stand for the VMs of the other clouds, in
the replicated project's default security group, so rules that admit "the same group" admit them
and no local port can take their addresses."""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable, Iterable
from functools import partial
from typing import TYPE_CHECKING, Any

from intercloud.drivers.cloud.base import (
    Addressing,
    Cloud,
    Network,
    Principal,
    ReplicaSpec,
    ReplicaSync,
)
from intercloud.errors import CloudError

if TYPE_CHECKING:
    from intercloud.drivers.cloud import Section

log = logging.getLogger("intercloud.cloud.openstack")

TAG = "intercloud"
UID_TAG = "intercloud-uid="
REMOTE_OWNER = "intercloud:remote"
TOKEN_CACHE_SECONDS = 30.0
TOKEN_CACHE_MAX = 4096


def _sdk_errors() -> tuple[type[BaseException], ...]:
    from keystoneauth1.exceptions import ClientException
    from openstack.exceptions import SDKException

    return (SDKException, ClientException)


def _uid_of(tags: Iterable[str]) -> str | None:
    for tag in tags or ():
        if tag.startswith(UID_TAG):
            return tag[len(UID_TAG) :]
    return None


def _pools(pools: Iterable[Any]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((p["start"], p["end"]) for p in pools or ()))


class OpenStackCloud(Cloud):
    def __init__(self, cfg: Section, connect: Callable[[], Any] | None = None) -> None:
        self._cfg = cfg
        self._connect = connect or self._default_connect
        self._conn: Any = None
        self._lock = threading.Lock()
        self._tokens: dict[str, tuple[float, Principal | None]] = {}
        self._listing: tuple[float, list[Network]] | None = None
        self._domain_id: str | None = None
        self._quota_set: dict[str, int] = {}
        # uid -> (spec, network id) of replicas made exactly as specified: a pass then only
        # lists the tagged networks instead of checking each replica's subnet and ports
        self._synced: dict[str, tuple[ReplicaSpec, str]] = {}
        self._addressing: dict[str, tuple[float, Addressing]] = {}  # network id -> (until, it)

    # -- connection ---------------------------------------------------------------------------

    def _default_connect(self) -> Any:
        from openstack.config import get_cloud_region
        from openstack.connection import Connection

        c = self._cfg
        # only our config: no clouds.yaml, no OS_* variables of whoever started the agent
        region = get_cloud_region(
            auth_type="password",
            auth={
                "auth_url": c.auth_url,
                "username": c.username,
                "password": c.password,
                "project_name": c.project_name,
                "user_domain_name": c.user_domain_name,
                "project_domain_name": c.project_domain_name,
            },
            region_name=c.region_name,
            interface=c.interface,
            load_yaml_config=False,
            load_envvars=False,
        )
        return Connection(config=region)

    def _c(self) -> Any:
        if self._conn is None:
            self._conn = self._connect()
        return self._conn

    def _call(self, what: str, fn: Callable[[], Any]) -> Any:
        """Run one SDK call; its failure becomes a CloudError that says what was attempted
        (never with credentials: SDK messages carry URLs and status, not secrets)."""
        try:
            return fn()
        except _sdk_errors() as exc:
            raise CloudError(f"openstack: {what} failed: {exc}") from exc

    # -- users ----------------------------------------------------------------------------------

    def authenticate(self, token: str) -> Principal | None:
        key = hashlib.sha256(token.encode()).hexdigest()
        now = time.monotonic()
        hit = self._tokens.get(key)
        if hit is not None and hit[0] > now:
            return hit[1]
        resp = self._call(
            "validating a token with Keystone",
            lambda: self._c().identity.get(
                "/auth/tokens", headers={"X-Subject-Token": token}, raise_exc=False
            ),
        )
        if resp.status_code in (401, 403, 404):
            principal = None
        elif resp.status_code != 200:
            raise CloudError(
                f"openstack: Keystone answered HTTP {resp.status_code} to a token check"
            )
        else:
            principal = self._principal(resp.json().get("token", {}))
        if len(self._tokens) >= TOKEN_CACHE_MAX:
            self._tokens = {k: v for k, v in self._tokens.items() if v[0] > now}
            if len(self._tokens) >= TOKEN_CACHE_MAX:
                self._tokens.clear()
        self._tokens[key] = (now + TOKEN_CACHE_SECONDS, principal)
        return principal

    def _principal(self, token: dict[str, Any]) -> Principal:
        roles = {r.get("name") for r in token.get("roles") or [] if isinstance(r, dict)}
        project = token.get("project") or {}
        domain = (project.get("domain") or {}).get("name")
        name = project.get("name")
        # Projects are known by name in the configured domain; a token of another domain's
        # project is not a project token here (names could collide).
        in_scope = isinstance(name, str) and domain == self._cfg.project_domain_name
        has_admin_role = self._cfg.admin_role in roles
        # Keystone's admin role is granted per project: an admin of their own project is not
        # an admin of the cloud. Only the configured admin project, or a system-scoped token
        # (`system: {"all": true}`), gives the admin API.
        system = token.get("system")
        system_scoped = isinstance(system, dict) and system.get("all") is True
        admin = has_admin_role and (system_scoped or (in_scope and name == self._cfg.admin_project))
        member = in_scope and (has_admin_role or self._cfg.member_role in roles)
        return Principal(admin=admin, project=name if member else None)

    # -- networks -------------------------------------------------------------------------------

    def _all(self) -> list[Network]:
        now = time.monotonic()
        with self._lock:
            if self._listing is not None and self._listing[0] > now:
                return self._listing[1]
            conn = self._c()
            projects = self._call(
                "listing Keystone projects",
                lambda: {p.id: p.name for p in conn.identity.projects(domain_id=self._domain())},
            )
            subnets: dict[str, Any] = {}
            for sn in self._call(
                "listing Neutron subnets", lambda: list(conn.network.subnets(ip_version=4))
            ):
                subnets.setdefault(sn.network_id, sn)
            nets = []
            for n in self._call("listing Neutron networks", lambda: list(conn.network.networks())):
                sn = subnets.get(n.id)
                project = projects.get(n.project_id)
                # replicas we made for peers are not the project's own to expand again
                if sn is None or project is None or TAG in (n.tags or []):
                    continue
                nets.append(Network(n.name or n.id, project, sn.cidr, n.id, sn.gateway_ip))
            self._listing = (now + self._cfg.cache_seconds, nets)
            return nets

    def _domain(self) -> str:
        if self._domain_id is None:
            name = self._cfg.project_domain_name
            dom = self._call(
                f"finding the Keystone domain {name!r}",
                lambda: self._c().identity.find_domain(name, ignore_missing=True),
            )
            if dom is None:
                raise CloudError(f"openstack: no Keystone domain {name!r}")
            self._domain_id = dom.id
        return self._domain_id

    def networks(self, project: str) -> list[Network]:
        return [n for n in self._all() if n.project == project]

    def network(self, project: str, name: str) -> Network | None:
        """By name, or by Neutron id (names need not be unique in Neutron)."""
        mine = self.networks(project)
        return next((n for n in mine if n.interface == name), None) or next(
            (n for n in mine if n.name == name), None
        )

    def all_networks(self) -> list[Network]:
        return list(self._all())

    def _subnet(self, network: Network) -> Any:
        conn = self._c()
        for sn in self._call(
            "listing the network's subnets",
            lambda: list(conn.network.subnets(network_id=network.interface)),
        ):
            if sn.cidr == network.cidr:
                return sn
        raise CloudError(f"openstack: network {network.name!r} has no subnet {network.cidr}")

    def addressing(self, network: Network) -> Addressing:
        """Read once per network per cache window, not once per target in every pass (a
        network expanded to several peers is asked for each); set_pools drops the entry."""
        now = time.monotonic()
        hit = self._addressing.get(network.interface)
        if hit is not None and hit[0] > now:
            return hit[1]
        conn = self._c()
        subnet = self._subnet(network)
        ports = []
        for port in self._call(
            "listing the network's ports",
            lambda: list(conn.network.ports(network_id=network.interface)),
        ):
            if port.device_owner == REMOTE_OWNER:
                continue  # other clouds' VMs: not ours to tell
            for f in port.fixed_ips or []:
                if f.get("subnet_id") == subnet.id:
                    ports.append((port.mac_address, f["ip_address"]))
        found = Addressing(_pools(subnet.allocation_pools), tuple(sorted(ports)))
        self._addressing[network.interface] = (now + self._cfg.cache_seconds, found)
        return found

    def set_pools(self, network: Network, pools: list[tuple[str, str]]) -> None:
        # a slice carved for one peer must not be carved again from a stale pool for the next
        self._addressing.pop(network.interface, None)
        subnet = self._subnet(network)
        if _pools(subnet.allocation_pools) == tuple(sorted(pools)):
            return
        self._call(
            f"setting the allocation pools of {network.name!r}",
            lambda: self._c().network.update_subnet(
                subnet, allocation_pools=[{"start": a, "end": b} for a, b in pools]
            ),
        )
        log.info("network %s: allocation pools now %s", network.name, pools)

    # -- replicas -------------------------------------------------------------------------------

    def sync_replicas(self, wanted: list[ReplicaSpec]) -> ReplicaSync:
        out = ReplicaSync()
        conn = self._c()
        try:
            tagged = self._call(
                "listing intercloud networks", lambda: list(conn.network.networks(tags=TAG))
            )
        except CloudError as exc:
            out.errors = {w.uid: exc.message for w in wanted}
            return out
        by_uid = {_uid_of(n.tags): n for n in tagged}
        for spec in wanted:
            net = by_uid.get(spec.uid)
            if net is not None and self._synced.get(spec.uid) == (spec, net.id):
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
            with self._lock:
                self._listing = None
        return out

    def _local_ports(self, interfaces: dict[str, str]) -> dict[str, tuple[tuple[str, str], ...]]:
        """Per replica, (mac, ip) of this cloud's own ports on it: one call for all."""
        conn = self._c()
        uid_of = {net_id: uid for uid, net_id in interfaces.items()}
        found: dict[str, list[tuple[str, str]]] = {uid: [] for uid in interfaces}
        for port in self._call(
            "listing the replicas' ports",
            lambda: list(conn.network.ports(network_id=sorted(uid_of))),
        ):
            if port.device_owner == REMOTE_OWNER or port.network_id not in uid_of:
                continue
            for f in port.fixed_ips or []:
                found[uid_of[port.network_id]].append((port.mac_address, f["ip_address"]))
        return {uid: tuple(sorted(p)) for uid, p in found.items()}

    def _project(self, spec: ReplicaSpec) -> tuple[Any, int]:
        conn = self._c()
        domain = self._domain()
        changes = 0
        project = self._call(
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
            project = self._call(
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
            self._call(
                f"setting the quota of project {spec.project!r}",
                lambda: conn.network.update_quota(
                    project.id, networks=spec.max_networks, subnets=spec.max_networks
                ),
            )
            self._quota_set[project.id] = spec.max_networks
        return project, changes

    def _ensure_replica(self, spec: ReplicaSpec, net: Any) -> tuple[str, int]:
        conn = self._c()
        project, changes = self._project(spec)
        tags = [TAG, UID_TAG + spec.uid]
        if net is None:
            net = self._call(
                f"creating network {spec.network!r}",
                lambda: conn.network.create_network(
                    name=spec.network, project_id=project.id, description=f"intercloud {spec.uid}"
                ),
            )
            # Tag it at once: a crash before this would leave a network nobody can find, so
            # the description says whose it is too.
            self._call("tagging the network", lambda: conn.network.set_tags(net, tags))
            log.info("made replica network %s (%s) for %s", spec.network, net.id, spec.uid)
            changes += 1
        subnets = self._call(
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
            subnet = self._call(
                f"creating subnet {spec.cidr}", lambda: conn.network.create_subnet(**body)
            )
            self._call("tagging the subnet", lambda: conn.network.set_tags(subnet, tags))
            changes += 1
        elif pools and _pools(subnet.allocation_pools) != tuple(sorted(spec.pools)):
            self._call(
                "setting the subnet's allocation pools",
                lambda: conn.network.update_subnet(subnet, allocation_pools=pools),
            )
            changes += 1
        changes += self._sync_placeholders(
            net.id, subnet.id, project.id, set(spec.remote_ports), spec.uid
        )
        return net.id, changes

    def _sync_placeholders(
        self, net_id: str, subnet_id: str, project_id: str, want: set[tuple[str, str]], what: str
    ) -> int:
        """Placeholder ports of `net_id` made exactly `want` ((mac, ip) of other clouds' VMs)."""
        conn = self._c()
        have = {}
        for port in self._call(
            "listing placeholder ports",
            lambda: list(conn.network.ports(network_id=net_id, device_owner=REMOTE_OWNER)),
        ):
            ips = [f["ip_address"] for f in port.fixed_ips or []]
            have[(port.mac_address, ips[0] if ips else "")] = port
        changes = 0
        for key, port in have.items():
            if key not in want:
                self._call("removing a placeholder port", partial(conn.network.delete_port, port))
                changes += 1
        for mac, ip in sorted(want - set(have)):
            self._call(
                f"making a placeholder port for {mac} {ip}",
                partial(
                    conn.network.create_port,
                    network_id=net_id,
                    project_id=project_id,
                    mac_address=mac,
                    fixed_ips=[{"subnet_id": subnet_id, "ip_address": ip}],
                    device_owner=REMOTE_OWNER,
                    name=f"remote {ip}",
                    description=f"intercloud {what}: a VM of another cloud",
                ),
            )
            changes += 1
        return changes

    def sync_placeholders(self, network: Network, ports: list[tuple[str, str]]) -> int:
        subnet = self._subnet(network)
        changes = self._sync_placeholders(
            network.interface, subnet.id, subnet.project_id, set(ports), network.name
        )
        if changes:
            log.info("network %s: placeholders for %d remote port(s)", network.name, len(ports))
        return changes

    def _remove_replica(self, net: Any) -> None:
        """The expansion is gone: its network goes, with every port on it (the placeholders and
        whatever this cloud's VMs had on it), then the project once it holds no replica."""
        conn = self._c()
        for port in self._call(
            "listing the replica's ports", lambda: list(conn.network.ports(network_id=net.id))
        ):
            if port.device_owner == "network:dhcp":
                continue  # Neutron removes it with the network
            self._call("removing a port", partial(conn.network.delete_port, port))
        self._call("removing the replica network", lambda: conn.network.delete_network(net))
        log.info("removed replica network %s (%s)", net.name, net.id)
        project_id = net.project_id
        others = self._call(
            "listing the project's networks",
            lambda: list(conn.network.networks(project_id=project_id)),
        )
        if not others:
            project = self._call(
                "reading the replicated project",
                lambda: conn.identity.get_project(project_id),
            )
            if TAG in (project.tags or []):
                self._call("removing the project", lambda: conn.identity.delete_project(project))
                self._quota_set.pop(project_id, None)
                log.info("removed replicated project %s", project.name)
