"""The scale benchmark's clock of "reconcile from nothing" (bench/rebuild_watch.py) against the
real kernel, in a namespace of the test's own: it counts the agent's devices up from rtnetlink's
link events, ignores every other interface, and when the kernel drops events (a receive queue
made too small on purpose) it still ends, by asking `ip`."""

from __future__ import annotations

import os
import subprocess
import threading
import time

import pytest

from bench import rebuild_watch, scale

pytestmark = pytest.mark.integration


def ip_batch(ns: str, lines: list[str]) -> None:
    subprocess.run(
        ["ip", "-n", ns, "-batch", "-"], input="\n".join(lines) + "\n", check=True, text=True
    )


def later(ns: str, lines: list[str]) -> threading.Thread:
    """`lines` run by `ip -batch` in `ns` in a moment, from another thread (the agent's part)."""

    def run() -> None:
        time.sleep(0.3)
        ip_batch(ns, lines)

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_it_ends_when_every_device_of_the_agent_is_up(namespaces, monkeypatch):
    ns = namespaces("watch")
    # no copy of the benchmark forked (one ran its cleanup on SIGTERM), and the calling
    # thread stays in its own namespace
    monkeypatch.setattr(os, "fork", lambda: pytest.fail("the watch forked a process"))
    here = os.readlink("/proc/thread-self/ns/net")
    # before: one of ours exists but is down, one interface is not ours
    ip_batch(ns, ["link add icv1 type bridge", "link add tn0 type bridge", "link set tn0 up"])
    watch = rebuild_watch.RebuildWatch(ns, {"icv": 3, "icb": 1}, lambda up: scale._names(ns, up))
    assert watch.up == {}
    assert os.readlink("/proc/thread-self/ns/net") == here
    made = later(
        ns,
        [
            *(f"link add {name} type bridge" for name in ("icv2", "icv3", "icb1", "icv9", "tn1")),
            *(f"link set {name} up" for name in ("icv1", "icv2", "icv3", "icb1", "icv9", "tn1")),
            "link del icv9",  # made, up, then gone: not counted
        ],
    )
    t0 = time.monotonic()
    done = watch.wait(30)
    made.join()
    assert t0 < done <= time.monotonic()
    assert not watch.lost
    assert watch.up == {"icv": 3, "icb": 1}
    assert scale._ours(ns, up=True) == {"icv": 3, "icb": 1}


def test_events_lost_it_asks_ip_and_still_ends(namespaces, monkeypatch):
    ns = namespaces("watch")
    monkeypatch.setattr(rebuild_watch, "RECEIVE_BUFFER", 4096)  # a few events fill it
    watch = rebuild_watch.RebuildWatch(ns, {"icv": 200}, lambda up: scale._names(ns, up))
    made = later(ns, [f"link add icv{i} up type bridge" for i in range(200)])
    time.sleep(1.0)  # the batch ran meanwhile, nobody reading: the queue overflowed
    done = watch.wait(30)
    made.join()
    assert watch.lost
    assert done <= time.monotonic()
    assert scale._ours(ns, up=True) == {"icv": 200}
