"""`intercloud charon-config`: each lane's strongswan.conf on a host (the lab's text with the
host's VICI socket and the journal for a log) and the agent's matching [ipsec] section."""

from __future__ import annotations

import tomllib

from click.testing import CliRunner

from intercloud.cli import main as cli_main
from intercloud.config import IpsecSection
from intercloud.drivers.ipsec.charon_conf import conf_text


def run(*args: str, code: int = 0) -> str:
    result = CliRunner().invoke(cli_main.cli, ["charon-config", *args])
    assert result.exit_code == code, result.output
    return result.output


def test_one_lane_is_the_lab_text_with_the_hosts_socket_and_the_journal():
    for lane in (0, 1):
        text = run("--libipsec", "--lanes", "2", "--lane", str(lane))
        vici = f"unix:///run/intercloud/charon-{lane}.vici"
        assert text == conf_text(vici, "stderr", libipsec=True, lane=lane)
    kernel = run("--lane", "0")
    assert "kernel-libipsec" not in kernel and "path = stderr" in kernel


def test_all_lanes_then_the_agents_ipsec_section():
    text = run("--libipsec", "--lanes", "3", "--vici-dir", "/run/ic")
    assert [line for line in text.splitlines() if line.startswith("# ==> ")] == [
        "# ==> /etc/intercloud/charon-0.conf <==",
        "# ==> /etc/intercloud/charon-1.conf <==",
        "# ==> /etc/intercloud/charon-2.conf <==",
        "# ==> the agent's /etc/intercloud/agent.toml <==",
    ]
    section = tomllib.loads(text.rpartition("<==\n")[2])["ipsec"]
    assert IpsecSection(**section) == IpsecSection(
        driver="strongswan",
        vici_socket="/run/ic/charon-0.vici",
        lanes=["/run/ic/charon-1.vici", "/run/ic/charon-2.vici"],
    )


def test_refused_settings():
    assert "needs --libipsec" in run("--lanes", "2", code=2)
    assert "not below --lanes 2" in run("--libipsec", "--lanes", "2", "--lane", "2", code=2)
    assert "unusable" in run("--vici-dir", "/run/my dir", code=2)
    assert "9" in run("--libipsec", "--lanes", "9", code=2)
