"""The Linux driver's last observation (drivers/dataplane/linux/watch.LastObservation): read
again when the kernel changed or when asked about an interface it did not cover."""

from __future__ import annotations

from intercloud.domain.hoststate import Bridge, HostState, Observed
from intercloud.drivers.dataplane.linux.watch import LastObservation


class Changes:
    def __init__(self) -> None:
        self.changed = False
        self.readings = 0

    def quiet(self) -> bool:
        return not self.changed

    def reading(self) -> None:
        self.readings += 1
        self.changed = False


def read(foreign: frozenset[str]) -> Observed:
    state = HostState()
    state.add(Bridge("icbe1"))
    return Observed(state, {name: "bridge" for name in foreign})


def test_read_again_only_when_the_kernel_changed_or_for_an_interface_not_covered():
    changes = Changes()
    seen = LastObservation(changes)  # type: ignore[arg-type]
    seen.get(frozenset({"tn0", "tn1"}), read)
    seen.get(frozenset({"tn0"}), read)  # covered
    assert changes.readings == 1
    changes.changed = True
    seen.get(frozenset({"tn0"}), read)
    assert changes.readings == 2
    assert seen.get(frozenset({"tn0", "tn2"}), read).kinds == {"tn0": "bridge", "tn2": "bridge"}
    assert changes.readings == 3


def test_each_caller_gets_its_own_copy():
    seen = LastObservation(Changes())  # type: ignore[arg-type]
    first = seen.get(frozenset({"tn0"}), read)
    first.state.bridges.clear()
    first.kinds["tn0"] = None  # type: ignore[index]
    again = seen.get(frozenset({"tn0"}), read)
    assert "icbe1" in again.state.bridges and again.kinds == {"tn0": "bridge"}
