"""The lab's records without a lab: the agent's config written from intercloud.config's
dataclasses reads back the same; lab.json round-trips through the typed state; the programs
run inside namespaces import only what their interpreter has."""

from __future__ import annotations

import ast
import sys
import tomllib
from pathlib import Path

from intercloud import config
from intercloud.lab import agentconf
from intercloud.lab.state import CloudRecord, LabState, NetworkRecord, Peering, VmRecord

ROOT = Path(__file__).resolve().parents[2]


def test_the_agent_config_reads_back_as_written():
    cfg = config.Config(
        agent=agentconf.agent_section(
            "A", Path("/l/A"), {"tls_cert": "/l/A/tls/agent.pem", "tls_key": "/l/A/k"}, "t" * 16
        ),
        dataplane=config.DataplaneSection(driver="linux", vni_max=4000),
        ipsec=agentconf.ipsec_section("/l/c.vici", ["/l/lane1/c.vici"]),
        projects=[config.ProjectDef("p1", "p" * 16)],
        networks=[config.NetworkDef("net1", "p1", "10.10.0.0/24", "tn-net1")],
    )
    text = agentconf.toml_text(cfg)
    assert config.parse(tomllib.loads(text), env={}) == cfg
    assert "vni_min = 1" in text  # defaults too: the file is the whole configuration


def test_lab_state_round_trips_through_json(tmp_path):
    cloud = CloudRecord(
        name="A",
        index=1,
        ns="l-gw-a",
        ip="198.18.1.2",
        local_ip="198.18.1.2",
        wan_ip="198.18.1.1",
        wan_if="wan-a",
        url="https://198.18.1.2:8700",
        admin_token="t",
        dir="/l/A",
        config="/l/A/agent.toml",
        log="/l/A/agent.log",
        networks={"net1": NetworkRecord(project="p1", cidr="10.10.0.0/24", bridge="tn-net1")},
        pid=42,
    )
    st = LabState(name="l", created_at=1.0, wan_ns="l-wan", agent_command=["x"])
    st.clouds["A"] = cloud
    st.vms["A/vm1"] = VmRecord("A", "vm1", "l-a-vm1", "10.10.0.11/24", "vavm1", "tn-net1", "net1")
    st.peerings.append(Peering(["A", "B"], ["p1"], "k", "psk"))
    st.save(tmp_path / "lab.json")
    assert LabState.load(tmp_path / "lab.json") == st


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_programs_import_only_what_their_interpreter_has():
    allowed = set(sys.stdlib_module_names) | {"__future__"}
    openstack = {"neutron", "sqlalchemy"}  # neutron_schema runs under Neutron's virtualenv
    for path in (ROOT / "src/intercloud/lab/programs").glob("*.py"):
        assert _imports(path) <= allowed | openstack, path
    for path in (ROOT / "bench/programs").glob("*.py"):
        assert _imports(path) <= allowed | {"httpx"}, path
