"""What a pass says of each tunnel port it was to build (reconciler/status.local_state): built,
waiting (pending), or not buildable (an error), from the desired state (reconciler/desired)."""

from __future__ import annotations

from intercloud.domain import owners
from intercloud.reconciler.dataplane import Built
from intercloud.reconciler.desired import LinkView, NetworkWant, PortWant, build
from intercloud.reconciler.status import Local, local_state

LINK = LinkView("A", "198.18.2.2", "198.18.1.2", enabled=True)
BUILT, WAITING, REFUSED, BROKEN = (owners.replica(i) for i in (1, 2, 3, 4))


def _built() -> Built:
    networks = [
        NetworkWant("r1", None, (PortWant(BUILT, "A", 101),)),
        NetworkWant("r2", None, (PortWant(WAITING, "A", 102, blocked="waiting for its network"),)),
        NetworkWant("r3", None, (PortWant(REFUSED, "A", 103, failed="quota exceeded"),)),
        NetworkWant("r4", None, (PortWant(BROKEN, "A", 104),)),
    ]
    desired = build("ic", 4789, networks, {"A": LINK}, {})
    broken = desired.needs[BROKEN] - desired.needs[BUILT]  # its own VXLAN port and bridge
    return Built(desired, networks, broken)


def test_each_port_is_built_waiting_or_not_buildable():
    built = _built()
    assert local_state(built, BUILT).state is Local.BUILT
    waiting = local_state(built, WAITING)
    assert (waiting.state, waiting.reason) == (Local.BLOCKED, "waiting for its network")
    refused = local_state(built, REFUSED)
    assert (refused.state, refused.reason) == (Local.NOT_BUILT, "quota exceeded")
    broken = local_state(built, BROKEN)
    assert broken.state is Local.NOT_BUILT and "could not be built" in broken.reason


def test_a_port_made_after_the_pass_read_its_wants_waits_for_the_next_pass():
    """A peer's call may add a replica while a pass runs: the pass built nothing for it, so
    it is not active yet (it was, before: nothing was missing)."""
    late = local_state(_built(), owners.replica(99))
    assert (late.state, late.reason) == (Local.BLOCKED, "to be built in the next pass")
