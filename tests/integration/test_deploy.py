"""docs/deploy.md followed step by step: every `sh` block of the document, in order, on the host
it names (two network namespaces standing for two Debian hosts, tests/integration/
deploy_hosts.py), from empty configuration directories to a ping between a VM on each host
across an encrypted expansion. Only `NAME` and `ADDR`, which the document defines per host,
are substituted; the units' ExecStart are run as the units say (without systemd)."""

from __future__ import annotations

import re
import subprocess

from tests.integration.deploy_hosts import (
    REPO,
    Host,
    mount_points,
    remove_mount_points,
    shell_blocks,
    unit_settings,
)
from tests.integration.namespaces import Namespaces, ip

DOC = REPO / "docs" / "deploy.md"
UNITS = REPO / "deploy" / "systemd"
VM_ADDRESSES = {"a": "10.10.0.1/24", "b": "10.10.0.2/24"}  # as the document says


def host_variables(block: str) -> dict[str, dict[str, str]]:
    """{"a": {"NAME": "A", "ADDR": ...}, ...} from the block after `# on A:` comments."""
    found: dict[str, dict[str, str]] = {}
    host = ""
    for line in block.splitlines():
        marker = re.fullmatch(r"# on (\w+):", line)
        if marker:
            host = marker.group(1).lower()
        elif line.strip():
            found[host] = dict(pair.split("=", 1) for pair in line.split())
    return found


def logical_lines(body: str) -> list[str]:
    """The block's lines, a line ending in a backslash joined with the next."""
    lines: list[str] = []
    for line in body.splitlines():
        if lines and lines[-1].endswith("\\"):
            lines[-1] += "\n" + line
        else:
            lines.append(line)
    return lines


def run_on_host(host: Host, body: str, variables: dict[str, str]) -> None:
    """Each line as written, in bash (consecutive lines as one script), but those `emulate`
    carries out."""
    chunk: list[str] = []
    for line in logical_lines(body):
        emulated = host.emulation(line)
        if emulated is None:
            chunk.append(line)
            continue
        if chunk:
            print(host.bash("\n".join(chunk), variables))
            chunk = []
        print(f"[{host.name}] {line}\n{emulated()}")
    if chunk:
        print(host.bash("\n".join(chunk), variables))


def run_block(block: str, hosts: dict[str, Host], vms: dict[str, str], variables: dict) -> None:
    first, _, body = block.partition("\n")
    on_host = re.fullmatch(r"# host: ([a-z, ]+)", first)
    in_vm = re.fullmatch(r"# vm: ([a-z])", first)
    assert on_host or in_vm, f"a block of docs/deploy.md names no host: {first!r}"
    if in_vm:
        done = subprocess.run(
            ["ip", "netns", "exec", vms[in_vm.group(1)], "bash", "-e", "-c", body],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, f"{body}\n{done.stdout}{done.stderr}"
        print(done.stdout)
        return
    assert on_host is not None
    for name in on_host.group(1).replace(" ", "").split(","):
        run_on_host(hosts[name], body, variables[name])


def wire(namespaces: Namespaces, hosts: dict[str, Host], variables: dict) -> dict[str, str]:
    """The hosts' underlay link, and a VM per host: a namespace whose eth0 is the other end of
    the host's interface vm-<host>1 (left down, unattached: the document attaches it)."""
    a, b = hosts["a"], hosts["b"]
    namespaces.veth(a.ns, "eth0", b.ns, "eth0")
    vms = {}
    for name, host in hosts.items():
        ip("-n", host.ns, "addr", "add", f"{variables[name]['ADDR']}/24", "dev", "eth0")
        ip("-n", host.ns, "link", "set", "eth0", "up")
        vms[name] = namespaces(f"vm{name}")
        namespaces.veth(vms[name], "eth0", host.ns, f"vm-{name}1")
        ip("-n", vms[name], "addr", "add", VM_ADDRESSES[name], "dev", "eth0")
        ip("-n", vms[name], "link", "set", "eth0", "up")
    return vms


def check_after(a: Host, blocks: list[str], hosts: dict, vms: dict, variables: dict) -> None:
    """Both lanes carried an SA and are up; the agent migrated its new database at its first
    start, and the upgrade's restart (the same schema) found it at the newest revision without
    running alembic; the tunnel still carries the VMs' ping after that restart."""
    for lane in (0, 1):
        assert "CHILD_SA link-B{" in a.journal(f"intercloud-charon@{lane}")
    assert "Running upgrade  -> 0001" in a.journal("intercloud-agent")
    assert a.journal("intercloud-agent").count("alembic.runtime.migration: Context impl") == 1
    cli = ". /etc/intercloud/cli.env && . /etc/intercloud/admin.env && export INTERCLOUD_URL "
    cli += "INTERCLOUD_CACERT INTERCLOUD_TOKEN && intercloud status"
    assert "lanes 2/2 up" in a.bash(cli, {})
    (ping,) = [block for block in blocks if block.startswith("# vm: a")]
    run_block(ping, hosts, vms, variables)


def test_the_units_pass_systemd_analyze_verify(tmp_path):
    """systemd-analyze checks every setting of the units (the sandbox has no systemd to run
    them); the agent's ExecStart, /usr/local/bin/intercloud, is the installed one."""
    charon = tmp_path / "intercloud-charon@0.service"
    charon.write_text((UNITS / "intercloud-charon@.service").read_text())
    done = subprocess.run(
        ["systemd-analyze", "verify", str(charon), str(UNITS / "intercloud-agent.service")],
        capture_output=True,
        text=True,
    )
    complaints = [
        line
        for line in (done.stdout + done.stderr).splitlines()
        if line.strip() and "/usr/local/bin/intercloud is not executable" not in line
    ]
    assert not complaints, complaints
    assert unit_settings(charon, "0")["Environment"] == (
        "STRONGSWAN_CONF=/etc/intercloud/charon-0.conf"
    )


def test_deploy_md_from_two_empty_hosts_to_a_ping_across(namespaces, tmp_path):
    blocks = shell_blocks(DOC.read_text())
    variables = host_variables(blocks[0])
    assert set(variables) == {"a", "b"}
    made = mount_points()
    hosts: dict[str, Host] = {}
    try:
        for name in ("a", "b"):
            ns = namespaces(f"host{name}")
            hosts[name] = Host(name, ns, variables[name]["ADDR"], tmp_path / name, hosts)
        vms = wire(namespaces, hosts, variables)
        for block in blocks[1:]:
            run_block(block, hosts, vms, variables)
        check_after(hosts["a"], blocks, hosts, vms, variables)
    finally:
        for host in hosts.values():
            host.stop_all()
        remove_mount_points(made)
