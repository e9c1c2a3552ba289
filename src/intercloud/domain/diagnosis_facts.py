"""What `intercloud diagnose` observes of one link (service/diagnosis.py gathers it) and what it
says of each layer (domain/diagnosis.py judges): plain values."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

LAYERS = ("underlay", "ipsec", "api", "clock", "fdb", "tunnel", "mtu")
OK, BROKEN, SKIPPED = "ok", "broken", "skipped"
ETHERNET_HEADER = 14
NO_PROBER = "no tunnel probe on this agent"
SMALL_PROBE = 64  # bytes: the smallest Ethernet frame, the tunnel probe's size
# how API failures are told apart (federation/failures.py)
API_FAILURES = ("refused", "timeout", "certificate", "tls", "signature", "bad_answer", "error")


@dataclass(frozen=True)
class Layer:
    layer: str
    state: str  # ok | broken | skipped
    detail: str
    advice: str = ""

    def as_dict(self) -> dict[str, str]:
        return {
            "layer": self.layer,
            "state": self.state,
            "detail": self.detail,
            "advice": self.advice,
        }


# -- what was observed ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Route:
    """The agent host's route to the peer's underlay address: `detail` says which (or why none)."""

    ok: bool
    detail: str


@dataclass(frozen=True)
class Sa:
    """The link's IPsec connection as the driver sees it (lane 0); packet counts of its
    CHILD_SAs before and after the API check (inbound ESP during the check proves the return
    path)."""

    ike_state: str  # ESTABLISHED, CONNECTING, ... DOWN
    up: bool
    last_error: str = ""
    packets_in: tuple[int, int] | None = None  # (before, after) the API check
    packets_out: tuple[int, int] | None = None


@dataclass(frozen=True)
class Api:
    """The peer's health call: `failure` None (answered) or one of API_FAILURES; `peer_time`:
    the peer's clock (its answer's `time`, or the Date header of a refusal), `our_time` ours
    at the same moment; `rtt` seconds."""

    url: str
    failure: str | None = None
    detail: str = ""
    rtt: float | None = None
    peer_time: float | None = None
    our_time: float | None = None


@dataclass(frozen=True)
class Port:
    """One tunnel port of the link: its expected VNI and flood address; what the host has
    (`flood`: the device's flood addresses, None: no such device); the probe's answers
    (`small`/`big`: RTT in seconds of one probe frame of SMALL_PROBE / `big_size` bytes, None:
    no answer; `probed` False: no prober on this agent)."""

    name: str
    vni: int
    remote: str
    flood: tuple[str, ...] | None = None
    probed: bool = False
    small: float | None = None
    big: float | None = None
    big_size: int = 0
    loss: float | None = None  # the prober's running loss, for the detail
    silent_for: float | None = None  # seconds since the prober's last answer through it
    probe_error: str = ""  # why it could not be probed


@dataclass(frozen=True)
class Link:
    peer: str
    remote: str  # the peer's underlay address
    encrypted: bool
    enabled: bool = True
    route: Route | None = None
    sa: Sa | None = None
    ipsec_refusal: str | None = None  # the IPsec driver cannot encrypt ("none" driver)
    api: Api | None = None
    window: int = 300  # seconds (signing.MAX_SKEW_SECONDS)
    ports: Sequence[Port] | None = None  # None: this data plane's ports are not read
    prober: bool = False  # a tunnel prober runs on this agent
    prober_off: str = NO_PROBER  # why not
    vm_mtu: int = 0


@dataclass
class Diagnosis:
    peer: str
    layers: list[Layer] = field(default_factory=list)

    @property
    def broken(self) -> str | None:
        return next((lay.layer for lay in self.layers if lay.state == BROKEN), None)

    def as_dict(self) -> dict[str, object]:
        first = next((lay for lay in self.layers if lay.state == BROKEN), None)
        return {
            "peer": self.peer,
            "broken": first.layer if first else None,
            "advice": first.advice if first else "",
            "layers": [lay.as_dict() for lay in self.layers],
        }
