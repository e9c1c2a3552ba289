"""Building and tearing down a lab: the WAN router, each cloud's gateway (underlay.py), its
agent's config (agentconf.py), charons (charon.py) and record; a user-run agent in a VM."""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
import time
from collections.abc import Sequence
from contextlib import suppress
from pathlib import Path
from typing import Any

from intercloud.config import Config, DataplaneSection, NetworkDef, ProjectDef
from intercloud.domain.ha_settings import HaSection
from intercloud.lab import agentconf, ha_build, namespaces, pki, postgres, processes, underlay
from intercloud.lab.agentconf import AGENT_PORT
from intercloud.lab.charon import MAX_LANES, lane_dir, start_lanes
from intercloud.lab.gateways import LabGateways
from intercloud.lab.nsexec import LabError
from intercloud.lab.records import NETWORKS, PROJECTS
from intercloud.lab.state import CloudRecord, GatewayRecord, LabState, NetworkRecord

# A network of a cloud: (name, project, cidr, interface)
Network = tuple[str, str, str, str]

# Charons per gateway in `lab up`: a second one raised encrypted throughput by 21-29 % on two
# cores (README, Benchmarks); one core has nothing to share.
DEFAULT_LANES = 2 if (os.cpu_count() or 1) >= 2 else 1


def tls_settings(cloud_dir: Path, letter: str, ips: Sequence[str]) -> dict[str, str]:
    """The cloud's own CA and its agent's certificate (SANs: `ips` and 127.0.0.1), made in
    <cloud dir>/tls; the [agent] keys that serve them."""
    made = pki.write_cloud(cloud_dir / "tls", letter, [*ips, "127.0.0.1"])
    return {"tls_cert": str(made.cert), "tls_key": str(made.key)}


def require_root() -> None:
    if os.geteuid() != 0:
        raise LabError("the lab needs root (it creates network namespaces)")


def cloud_record(
    letter: str, index: int, ns: str, addrs: dict[str, Any], cloud_dir: Path
) -> dict[str, Any]:
    """The parts of a cloud's record every kind of lab has (addresses, files, its agent's URL)."""
    return {
        "name": letter,
        "index": index,
        "ns": ns,
        **addrs,
        "url": f"https://{addrs['ip']}:{AGENT_PORT}",
        "ca": str(cloud_dir / "tls" / "ca.pem"),
        "dir": str(cloud_dir),
        "config": str(cloud_dir / "agent.toml"),
        "log": str(cloud_dir / "agent.log"),
    }


class LabBuild(LabGateways):
    def up(
        self,
        clouds: int = 3,
        *,
        start_agents: bool = True,
        encrypt: bool = True,
        nat: Sequence[str] = (),
        timeout: float = 30.0,
        lanes: int = 1,
        ha: bool = False,
    ) -> LabState:
        """Build the lab; all or nothing (on any failure everything made is torn down).
        `encrypt`: one charon per gateway and IPsec on every link; `lanes`: charons per
        gateway sharing the encryption (drivers/ipsec/lanes.py); `nat`: the clouds (letters)
        that sit behind a NAT router; `ha`: two gateways per cloud and a PostgreSQL they
        share (ha_build.py)."""
        self._check_up(clouds, lanes)
        if ha and nat:
            raise LabError("a lab with two gateways per cloud (ha) has no NAT'd clouds")
        try:
            self.state_dir.mkdir(parents=True, exist_ok=True)
            st = LabState(
                name=self.name,
                created_at=time.time(),
                wan_ns=self.wan_ns,
                agent_command=list(self.agent_command),
                encrypt=encrypt,
                lanes=lanes if encrypt else 1,
                ha=ha,
            )
            self._save(st)
            namespaces.add_namespace(self.wan_ns)
            namespaces.sysctl(self.wan_ns, "net.ipv4.ip_forward", "1")
            behind_nat = {n.upper() for n in nat}
            for i in range(1, clouds + 1):
                letter = chr(ord("A") + i - 1)
                st.clouds[letter] = (
                    self._build_ha_cloud(letter, i, encrypt=encrypt)
                    if ha
                    else self._build_cloud(letter, i, nat=letter in behind_nat, encrypt=encrypt)
                )
                self._save(st)
            self._start(st, start_agents, timeout)
        except BaseException:
            with suppress(LabError):
                self.down()
            raise
        return self.state()

    def _check_up(self, clouds: int, lanes: int) -> None:
        require_root()
        if not 1 <= clouds <= 26:
            raise LabError(f"clouds must be between 1 and 26 (got {clouds})")
        if not 1 <= lanes <= MAX_LANES:
            raise LabError(f"lanes must be between 1 and {MAX_LANES} (got {lanes})")
        leftovers = namespaces.list_namespaces(self.name + "-")
        if self.exists() or leftovers:
            raise LabError(
                f"lab {self.name} already up; run lab down"
                + (f" (namespaces: {', '.join(leftovers)})" if leftovers else "")
            )

    def _start(self, st: LabState, start_agents: bool, timeout: float) -> None:
        if st.encrypt:
            for c in st.clouds.values():
                self._start_charons(c)
        if start_agents:
            for letter in st.clouds:
                self._spawn(letter)
            for letter in st.clouds:
                self._wait_healthy(letter, timeout)

    def _lanes(self) -> int:
        return self.state().lanes if self.exists() else 1

    def _start_charons(self, c: CloudRecord) -> None:
        """The gateway's charon and those of its further lanes (each in its own directory);
        with several gateways, each one's."""
        places = [(g.ns, g.charon_dir) for g in c.gateways.values()] or [(c.ns, c.charon_dir)]
        for ns, charon_dir in places:
            assert charon_dir is not None
            start_lanes(ns, Path(charon_dir), self._lanes())

    def _build_ha_cloud(self, letter: str, index: int, *, encrypt: bool) -> CloudRecord:
        """The site (switch, tenant segments, PostgreSQL) and two gateways, an agent each."""
        site = self.gw_ns(letter)
        addrs = ha_build.build_site(self.wan_ns, letter, index, site)
        addrs["nat_ns"] = None
        nets = [net for net, _, _ in NETWORKS]
        for net in nets:
            namespaces.add_bridge(site, f"tn-{net}")
        gateways = {g: ha_build.build_gateway(site, index, g, nets) for g in ha_build.GATEWAYS}
        # its own directory, outside the lab's private state dir (the postgres user's)
        pg_dir = Path(tempfile.mkdtemp(prefix=f"intercloud-{self.name}-{letter.lower()}-pg-"))
        self._pg_dirs.append(pg_dir)
        site_ip = ha_build.site_ip(index)
        postgres.start(site, pg_dir, site_ip, f"{ha_build.subnet(index)}.0/24")
        c = self._cloud_record(letter, index, site, addrs, encrypt, gateways=gateways)
        c.database = str(pg_dir)
        return c

    def _build_cloud(self, letter: str, index: int, *, nat: bool, encrypt: bool) -> CloudRecord:
        gw = self.gw_ns(letter)
        addrs = underlay.build(self.name, self.wan_ns, letter, index, gw, nat=nat)
        for net, _, _ in NETWORKS:
            namespaces.add_bridge(gw, f"tn-{net}")
        c = self._cloud_record(letter, index, gw, addrs, encrypt)
        c.nat = nat
        return c

    def _cloud_record(
        self,
        letter: str,
        index: int,
        ns: str,
        addrs: dict[str, Any],
        encrypt: bool,
        networks: Sequence[Network] | None = None,
        gateways: dict[str, str] | None = None,
    ) -> CloudRecord:
        """Write the agent's config (with `gateways`, name -> namespace: each gateway's);
        the cloud's record."""
        cloud_dir = self.state_dir / letter
        cloud_dir.mkdir(parents=True, exist_ok=True)
        charon_dir = cloud_dir / "charon"
        c = CloudRecord(
            **cloud_record(letter, index, ns, addrs, cloud_dir),
            admin_token=secrets.token_hex(16),
            projects={p: secrets.token_hex(16) for p in PROJECTS},
            charon_dir=str(charon_dir) if encrypt else None,
        )
        nets = networks or [(n, p, cidr, f"tn-{n}") for n, p, cidr in NETWORKS]
        c.networks = {n: NetworkRecord(project=p, cidr=cidr, bridge=i) for n, p, cidr, i in nets}
        names = [addrs["ip"], addrs["local_ip"]]
        if gateways:
            names += [ha_build.gateway_ip(index, g) for g in gateways]
        tls = tls_settings(cloud_dir, letter, names)
        cfg = Config(
            agent=agentconf.agent_section(letter, cloud_dir, tls, c.admin_token),
            dataplane=DataplaneSection(driver="linux", prefix="ic"),
            ipsec=self._ipsec(charon_dir, encrypt),
            projects=[ProjectDef(name, token) for name, token in c.projects.items()],
            networks=[NetworkDef(n, p, cidr, i) for n, p, cidr, i in nets],
        )
        if not gateways:
            agentconf.write(Path(c.config), cfg)
            return c
        cfg.agent.database = postgres.url(ha_build.site_ip(index))
        for g, ns in gateways.items():
            gw_dir = cloud_dir / g
            gw_dir.mkdir(exist_ok=True)
            gw_charon = gw_dir / "charon"
            cfg.ipsec = self._ipsec(gw_charon, encrypt)
            cfg.ha = HaSection(
                enabled=True, gateway=g, address=f"{addrs['ip']}/24", interface="eth0"
            )
            agentconf.write(gw_dir / "agent.toml", cfg)
            c.gateways[g] = GatewayRecord(
                name=g,
                ns=ns,
                ip=ha_build.gateway_ip(index, g),
                config=str(gw_dir / "agent.toml"),
                log=str(gw_dir / "agent.log"),
                charon_dir=str(gw_charon) if encrypt else None,
            )
        c.config, c.log, c.charon_dir = c.gateways["gw1"].config, c.gateways["gw1"].log, None
        return c

    def _ipsec(self, charon_dir: Path, encrypt: bool) -> Any:
        """The [ipsec] of an agent whose charons live in `charon_dir` (and its lanes' dirs)."""
        vici = str(charon_dir / "charon.vici") if encrypt else None
        lanes = [str(lane_dir(charon_dir, k) / "charon.vici") for k in range(1, self._lanes())]
        return agentconf.ipsec_section(vici, lanes)

    def add_standalone(
        self, host: str, *, vm: str = "user", network: str = "net1", timeout: float = 30.0
    ) -> str:
        """A user-run (standalone) agent in a VM of cloud `host`: the VM sits on `host`'s
        tenant `network` (its NIC `ens1`, which the agent expands, as its network `home` of
        project p1) and has a public address on the WAN, as a public cloud's VM would. It is
        recorded as one more cloud (the next letter); `lab down` removes it. Returns its
        letter."""
        st = self.state()
        h = self.cloud(host)
        if network not in h.networks:
            raise LabError(f"cloud {h.name} has no network {network!r}")
        index = len(st.clouds) + 1
        letter = chr(ord("A") + index - 1)
        ns = self.vm_ns(h.name, vm)
        try:
            addrs = underlay.build(self.name, self.wan_ns, letter, index, ns, nat=False)
            veth = f"v{h.name.lower()}{vm}"
            namespaces.add_veth(ns, "ens1", h.ns, veth)
            namespaces.set_up(ns, "ens1")
            namespaces.set_up(h.ns, veth, master=f"tn-{network}")
            home = [("home", "p1", h.networks[network].cidr, "ens1")]
            c = self._cloud_record(letter, index, ns, addrs, st.encrypt, networks=home)
            c.standalone_in = f"{h.name}/{vm}"
            with self._edit() as s:
                s.clouds[letter] = c
            if st.encrypt:
                self._start_charons(c)
            self._spawn(letter)
            self._wait_healthy(letter, timeout)
        except BaseException:
            with suppress(LabError):
                namespaces.delete_namespace(ns)
            raise
        return letter

    def down(self) -> list[str]:
        """Kill the agents and every process in `<name>-*` namespaces, delete those namespaces
        and the state dir. Idempotent; works without lab.json. Returns the deleted namespaces."""
        require_root()
        try:
            clouds = list(self.state().clouds.values())
        except (LabError, ValueError):
            clouds = []
        databases = [Path(c.database) for c in clouds if c.database] + self._pg_dirs
        processes.kill_pids([pid for c in clouds for pid in self._agent_pids(c)])
        deleted, failed = [], []
        for ns in namespaces.list_namespaces(self.name + "-"):
            try:
                namespaces.delete_namespace(ns)
                deleted.append(ns)
            except LabError as exc:
                failed.append(str(exc))
        shutil.rmtree(self.state_dir, ignore_errors=True)
        for pg_dir in databases:  # after the namespaces: their servers are gone with them
            if pg_dir.name.startswith(f"intercloud-{self.name}-"):
                shutil.rmtree(pg_dir, ignore_errors=True)
        if failed:
            raise LabError("; ".join(failed))
        return deleted
