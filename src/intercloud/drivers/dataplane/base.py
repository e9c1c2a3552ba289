"""The data plane driver contract. Every verb is idempotent: calling it on a host that already
matches changes nothing, and removing what is absent is not an error.

A driver is built for one agent's `prefix`: every host object it observes, makes or cleans up
is named with it (domain/naming.py), and its MSS clamp table and relay filter are that agent's."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext

from intercloud.domain import naming
from intercloud.domain.hoststate import Attachment, Bridge, Observed, Patch, Vxlan
from intercloud.domain.plan import Step
from intercloud.errors import DriverError, IntercloudError


class Dataplane(ABC):
    supported_tunnels: tuple[str, ...] = ("vxlan",)
    # Whether ensure_mss_clamp works: the reconciler asks for clamps only where it does (the
    # VMs' MTU must then leave room for the tunnel, as Neutron's network MTU does).
    clamps_mss: bool = False

    def __init__(self, prefix: str) -> None:
        self._prefix = naming.check_prefix(prefix)

    @property
    def prefix(self) -> str:
        """What every host object of this driver's agent is named with (fixed at build)."""
        return self._prefix

    @abstractmethod
    def observe(self, foreign: Iterable[str] = ()) -> Observed:
        """The host objects whose names start with our prefix (bridges, vxlans, patches), plus
        an Attachment for each interface named in `foreign` that is enslaved to one of our
        bridges, the kind of each `foreign` interface, and what exists but is broken (drift).
        Must report exactly the fields that ensure_* sets, so a converged host diffs empty."""

    @abstractmethod
    def ensure_bridge(self, bridge: Bridge) -> None:
        """Create the bridge (up) or set its MTU if it exists."""

    @abstractmethod
    def ensure_vxlan(self, vxlan: Vxlan) -> None:
        """Create the VXLAN device (replacing one of that name whose attributes differ),
        enslave it to vxlan.master, set it up."""

    @abstractmethod
    def ensure_patch(self, patch: Patch) -> None:
        """Create the veth pair; `name` into `master`, `peer` into `peer_master`; both up."""

    @abstractmethod
    def attach(self, attachment: Attachment) -> None:
        """Enslave an existing operator interface to our bridge and set it up."""

    @abstractmethod
    def detach(self, interface: str) -> None:
        """Release an operator interface from whatever bridge holds it (no error if free)."""

    @abstractmethod
    def remove_link(self, name: str) -> None:
        """Delete one of our interfaces (a veth pair goes with either end)."""

    @abstractmethod
    def interface_kind(self, name: str) -> str | None:
        """'bridge', 'veth', 'vxlan', 'other', or None if the interface does not exist."""

    # -- TCP MSS clamping (one table of rules per agent; drivers that cannot clamp keep these
    # defaults: they observe no clamp and refuse to install one) -------------------------------

    def observe_mss_clamp(self) -> dict[str, int]:
        """Our agent's clamp rules: interface -> MSS (HostState.mss_clamp)."""
        return {}

    def ensure_mss_clamp(self, rules: Mapping[str, int]) -> None:
        """Make the clamp table hold exactly `rules` (interface -> IPv4 MSS), atomically, and
        only if it differs; {} removes it."""
        if rules:
            raise DriverError(f"the {type(self).__name__} data plane cannot clamp TCP MSS")

    def remove_mss_clamp(self) -> None:  # noqa: B027 - optional hook
        """Remove our agent's clamp table (no error if absent)."""

    def on_change(self, callback: Callable[[], None]) -> None:  # noqa: B027 - optional hook
        """Call `callback` (from any thread) when the host changes in a way that the next
        pass must see soon (the OVS data plane: a port tagged or gone on br-int)."""

    def flush_learned(self, ports: Sequence[str]) -> None:  # noqa: B027 - optional hook
        """Forget the MAC addresses the bridges learned on each of `ports` (given a bridge: on
        all of its ports; no error for one that is gone): after a path change they may point
        the wrong way until they age out (5 min). All at once: a peer's link that goes down
        and comes back asks for every port toward it."""

    # -- Relay filter (in/out port pairs not to forward between; HostState.no_forward) --------

    def observe_no_forward(self) -> set[tuple[str, str]]:
        return set()

    def ensure_no_forward(self, pairs: Iterable[tuple[str, str]]) -> None:
        """Make the agent's relay filter drop exactly `pairs`, atomically; () removes it."""
        if pairs:
            raise DriverError(f"the {type(self).__name__} data plane cannot filter relaying")

    def remove_no_forward(self) -> None:  # noqa: B027 - optional hook
        """Remove our agent's relay filter (no error if absent)."""

    def cleanup(self) -> None:
        """Remove everything this agent made (all interfaces named with our prefix, clamps)."""
        state = self.observe().state
        for name in sorted(state.vxlans) + sorted(state.patches) + sorted(state.bridges):
            self.remove_link(name)
        self.remove_mss_clamp()
        self.remove_no_forward()

    def kinds(self, names: Iterable[str]) -> dict[str, str | None]:
        """interface_kind() of each name (for a snapshot's `kinds`)."""
        return {name: self.interface_kind(name) for name in names}

    def apply(self, steps: Iterable[Step]) -> Iterator[tuple[Step, IntercloudError | None]]:
        """Carry out the steps of one plan in order: each step with its error (None: done).
        A step that fails does not stop the others. A driver may do many steps in one
        request (the Linux one: fresh devices in one `ip -batch`)."""
        for step in steps:
            try:
                getattr(self, step.verb)(step.obj)
            except IntercloudError as exc:
                yield step, exc
            else:
                yield step, None

    def applying(self) -> AbstractContextManager[None]:
        """Around the steps of one plan made from a fresh observe(): a driver may then trust
        what it observed instead of asking again for every interface (optional)."""
        return nullcontext()

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release handles (netlink sockets)."""
