"""A VM that moves between clouds in standalone mode (a VM is a namespace): the source VM goes,
the destination VM comes up on the other cloud's bridge with the same MAC and IP and sends a
gratuitous ARP (as QEMU does at arrival). A VM that stays pings it at 20/s throughout; the
longest gap of each move is printed (the figure and its target are in bench.migration)."""

from __future__ import annotations

import time

from bench import migration
from tests.integration.test_expansion import expand, shrink
from tests.waiting import wait_for


def test_moves_a_b_a_then_a_b_c_under_ping(lab3):
    lab = lab3
    exp = expand(lab, "A", "p1", "net1", ["B", "C"])
    try:
        lab.add_vm("A", "a1", "10.10.0.1/24", network="net1")
        migration.place(lab, "A")
        wait_for(
            lambda: lab.exec("A/a1", ["ping", "-c", "1", "-W", "1", migration.IP]).returncode == 0,
            60,
            what="a1 -> the mover",
        )
        starts: list[float] = []
        with migration.Pings(lab, "A/a1", migration.IP) as pings:
            time.sleep(1)
            for src, dst in (("A", "B"), ("B", "A"), ("A", "B"), ("B", "C")):
                starts.append(time.time())
                migration.move(lab, src, dst)
                # the mover answers from its new cloud, and reaches the VM that stayed
                wait_for(
                    lambda dst=dst: (
                        lab.exec(
                            f"{dst}/mv", ["ping", "-c", "1", "-W", "1", "10.10.0.1"]
                        ).returncode
                        == 0
                    ),
                    30,
                    what=f"the mover in {dst} -> a1",
                )
                time.sleep(1.5)
        got = pings.gaps(starts)
        print(
            "standalone moves A->B->A->B->C, longest gap per move (s): "
            + ", ".join(f"{g:.3f}" for g in got)
        )
        assert len(got) == 4
        # after every move the mover answered the VM that stayed again (replies after it)
        for start in starts:
            assert pings.answered_after(start) >= 5, (start, pings.out[-500:])
    finally:
        for cloud in "ABC":
            if f"{cloud}/mv" in lab.state().vms:
                lab.remove_vm(cloud, "mv")
        shrink(lab, "A", "p1", exp["id"])
