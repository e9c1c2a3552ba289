"""The topology page in a real headless Chromium, inside cloud A's gateway namespace, over
HTTPS from A's agent: the lab's three clouds with their links' states, then a link going down
changes its colour on the open page (refreshed by its own script) within 10 s. Screenshots and
the DOM of each step are kept in the test's tmp dir (their paths printed)."""

from __future__ import annotations

import contextlib
import json
import subprocess
import time
from pathlib import Path

import pytest

from intercloud.lab.topology import AGENT_PORT
from tests.integration import browser
from tests.integration.test_topologies import _wan_cut
from tests.waiting import wait_for

COLOURS = {  # the page's CSS (api/static/topology.html), as the browser computes it
    "up": "rgb(46, 157, 68)",
    "down": "rgb(211, 60, 60)",
    "disabled": "rgb(154, 154, 154)",
}
# what the page shows, read in the browser: clouds drawn, each link's state and computed colour
SEEN = """document.getElementById("graph") === null ? "null" : JSON.stringify({
  clouds: [...document.querySelectorAll("g.cloud")].map((g) => g.dataset.cloud),
  links: Object.fromEntries([...document.querySelectorAll("line.link")].map((l) =>
    [l.dataset.peer, [l.dataset.state, getComputedStyle(l).stroke]])),
  rows: Object.fromEntries([...document.querySelectorAll("#links tbody tr")].map((r) =>
    [r.dataset.peer, r.dataset.state])),
  expansions: document.querySelectorAll("#expansions tbody tr").length,
  refreshes: Number(document.body.dataset.refreshes),
  status: document.getElementById("status").textContent,
  href: location.href,
})"""


NOT_YET = {"clouds": [], "links": {}, "rows": {}, "expansions": 0, "refreshes": 0}


def seen(web: browser.Browser) -> dict:
    """What the page shows now (NOT_YET before it is loaded)."""
    return json.loads(web.evaluate(SEEN)) or NOT_YET


def keep(web: browser.Browser, out: Path, step: str) -> Path:
    (out / f"topology-{step}.html").write_text(web.dom())
    shot = web.screenshot(out / f"topology-{step}.png")
    print(f"topology page, {step}: screenshot {shot}")
    return shot


def _wan_cut_off(lab) -> None:
    with contextlib.suppress(subprocess.CalledProcessError):  # never cut: stopped before
        _wan_cut(lab, "A", "C", on=False)


def test_the_page_shows_the_lab_and_a_link_going_down(lab3, tmp_path):
    if not browser.installed():
        pytest.fail("chromium is not installed (make deps installs Debian's chromium)")
    a = lab3.cloud("A")
    wait_for(
        lambda: (
            {lk["peer"]: lk["status"]["state"] for lk in lab3.api("A", "GET", "/v1/links")}
            == {"B": "up", "C": "up"}
        ),
        timeout=60,
        what="A's links to B and C up",
    )
    exp = lab3.api("A", "POST", "/v1/expansions", {"network": "net1", "peers": ["B", "C"]}, "p1")
    assert a.ca, "the lab serves HTTPS"
    pin = browser.spki_pin(Path(a.ca).parent / "agent.pem")
    url = f"https://127.0.0.1:{AGENT_PORT}/ui/topology#token={lab3.token('A')}"
    try:
        # the pin is what the browser trusts: pinned to another key, A's certificate is refused
        other = browser.spki_pin(Path(lab3.cloud("B").ca or "").parent / "agent.pem")
        with browser.Browser(a.ns, tmp_path / "other-pin", other) as web:
            assert web.open(url) == "net::ERR_CERT_AUTHORITY_INVALID"
        with browser.Browser(a.ns, tmp_path, pin) as web:
            web.open(url.replace(lab3.token("A"), "not-the-admin-token"))
            refused = wait_for(
                lambda: "invalid token" in (s := seen(web)).get("status", "") and s,
                timeout=30,
                what="the page saying the token is refused",
            )
            assert refused["clouds"] == [] and refused["links"] == {}, refused  # nothing shown
            web.open("about:blank")
            web.open(url)
            first = wait_for(
                lambda: (
                    (s := seen(web))["links"].get("C", [""])[0] == "up"
                    and s["links"].get("B", [""])[0] == "up"
                    and s["expansions"] == 1
                    and s
                ),
                timeout=30,
                what="the page showing A, B, C and both links up",
            )
            assert first["clouds"] == ["A", "B", "C"], first
            assert first["links"] == {"B": ["up", COLOURS["up"]], "C": ["up", COLOURS["up"]]}
            assert first["rows"] == {"B": "up", "C": "up"}
            assert "#token" not in first["href"] and "token" not in first["href"]
            keep(web, tmp_path, "up")

            cut = time.monotonic()
            lab3.api("A", "PATCH", "/v1/links/B", {"enabled": False})
            after = wait_for(
                lambda: (s := seen(web))["links"]["B"][0] == "disabled" and s,
                timeout=10,
                interval=0.2,
                what="B's link turning disabled on the open page",
            )
            took = time.monotonic() - cut
            assert after["links"] == {
                "B": ["disabled", COLOURS["disabled"]],
                "C": ["up", COLOURS["up"]],
            }, after
            # the same page, refreshed by its own script (never reloaded by the test)
            assert after["refreshes"] > first["refreshes"], (first, after)
            assert after["status"].startswith("updated"), after
            keep(web, tmp_path, "b-disabled")
            print(f"B's link shown disabled {took:.1f} s after the PATCH")

            cut = time.monotonic()
            _wan_cut(lab3, "A", "C", on=True)  # the underlay drops everything between A and C
            down = wait_for(
                lambda: (s := seen(web))["links"]["C"][0] == "down" and s,
                timeout=10,
                interval=0.2,
                what="C's link turning down on the open page after a WAN cut",
            )
            took = time.monotonic() - cut
            assert down["links"]["C"] == ["down", COLOURS["down"]], down
            assert down["rows"] == {"B": "disabled", "C": "down"}, down
            shot = keep(web, tmp_path, "c-down")
            print(f"C's link shown down {took:.1f} s after the WAN cut; last screenshot {shot}")
    finally:
        _wan_cut_off(lab3)
        lab3.api("A", "PATCH", "/v1/links/B", {"enabled": True})
        lab3.api("A", "DELETE", f"/v1/expansions/{exp['id']}", token="p1")
