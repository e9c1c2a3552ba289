"""The IPsec driver contract: one IKE SA per link, CHILD_SAs protecting the tunnel traffic
between the two endpoints. Every verb is idempotent."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class ConnectionSpec:
    """Desired IPsec for one link. Proposals are strongSwan proposal strings, e.g.
    ike_proposals=("aes256gcm16-prfsha256-ecp256",), esp_proposals=("aes256gcm16-ecp256",)."""

    name: str  # unique per agent, e.g. "link-B"
    local: str  # local underlay endpoint (IKE and tunnel traffic source)
    remote: str  # peer's underlay endpoint
    local_id: str  # IKE identity of this side (e.g. the cloud's name)
    remote_id: str  # the peer's IKE identity
    psk: str  # pre-shared key (never logged)
    ike_version: int = 2
    ike_proposals: tuple[str, ...] = ("aes256gcm16-prfsha256-ecp256",)
    ike_lifetime: int = 14400  # seconds (rekey_time of the IKE SA)
    esp_proposals: tuple[str, ...] = ("aes256gcm16-ecp256",)
    esp_lifetime: int = 3600  # seconds (rekey_time of the CHILD_SA)
    mode: str = "transport"  # "transport" | "tunnel"; tunnel is forced with NAT or libipsec
    dpd_delay: int = 10  # seconds
    protect_port: int = 4789  # UDP port of the tunnel traffic (VXLAN)
    initiator: bool = True  # the side with the lower name initiates; both may
    # Traffic-selector addresses (address or CIDR), when they differ from the IKE addresses:
    # the real (inner, private) address of a side behind NAT. The NAT'd side's
    # `local` is its private address already; the public side names the peer's private
    # address in `remote_ts` (its `remote` is the NAT router's public address). Empty: the
    # IKE address itself (/32). With libipsec, tunnel traffic must then be addressed to
    # remote_ts (e.g. the VXLAN remote), not to the NAT address.
    local_ts: str = ""
    remote_ts: str = ""
    # Lanes (lanes.py): a further charon's IKE/ESP-in-UDP port on both sides (0: charon's own
    # default), and whether the connection traps (lane 0) or only routes while its SA is up.
    ike_port: int = 0
    trap: bool = True


@dataclass
class ChildStatus:
    name: str
    state: str  # INSTALLED, REKEYING, ...
    mode: str  # TRANSPORT | TUNNEL
    encap: bool  # ESP in UDP (NAT-T)
    bytes_in: int = 0
    bytes_out: int = 0
    packets_in: int = 0
    packets_out: int = 0
    unique_id: int = 0  # charon's CHILD_SA id: changes on every rekey
    spi_in: str = ""
    spi_out: str = ""


@dataclass
class ConnectionStatus:
    name: str
    ike_state: str  # ESTABLISHED, CONNECTING, ... or DOWN when no IKE SA exists
    nat_detected: bool = False
    children: list[ChildStatus] = field(default_factory=list)
    last_error: str = ""  # e.g. "authentication failed" from VICI events / logs
    lanes: list[ConnectionStatus] = field(
        default_factory=list
    )  # further lanes' own status (lanes.py)

    @property
    def up(self) -> bool:
        return self.ike_state == "ESTABLISHED" and any(
            c.state == "INSTALLED" for c in self.children
        )


class Ipsec(ABC):
    # Why this driver protects no link (None: it does). Set by the `none` driver (noop.py):
    # an encrypted link then stays down with exactly this reason, and no connection is made.
    refusal: str | None = None

    @abstractmethod
    def backend(self) -> str:
        """'kernel' (XFRM ESP) or 'kernel-libipsec' (userspace ESP over a TUN device)."""

    @abstractmethod
    def ensure_connection(self, spec: ConnectionSpec, *, initiate: bool = True) -> bool:
        """Load (or replace, if it differs) the connection and its PSK, and (`initiate`)
        initiate it if no IKE SA is up. Returns True if anything was changed. A standby
        gateway loads without initiating: it holds no address to initiate from."""

    @abstractmethod
    def remove_connection(self, name: str) -> bool:
        """Terminate SAs and unload the connection and its PSK. True if anything existed."""

    @abstractmethod
    def connections(self) -> dict[str, ConnectionStatus]:
        """Status of every connection this agent loaded (by name)."""

    def initiate_all(self) -> list[str]:
        """Initiate every loaded connection without an SA now, whichever side usually
        initiates (a gateway taking over: the peers hold SAs with the old one). Does not wait
        for the exchange. The names initiated; no connection, no work."""
        return []

    def terminate_all(self) -> None:  # noqa: B027 - optional hook
        """Drop every SA at once, keeping the connections loaded (a gateway stepping down)."""

    def on_sa_up(self, callback: Callable[[], None]) -> None:  # noqa: B027 - optional hook
        """Call `callback` (from another thread) when an SA comes up: the reconciler then
        makes a pass at once and the link's tunnel ports come up without waiting for the
        next. Drivers without events never call it (their passes find the SA up)."""

    def ensure_guard(self, destinations: set[str]) -> bool:
        """Drop tunnel traffic to these peers' tunnel addresses whenever it would leave in
        clear (cleartext_guard.py), and to no others; True if anything was changed. Drivers
        whose encryption cannot fall through to clear text do nothing."""
        return False

    def ensure_steering(self) -> bool:
        """Route the tunnel traffic into this driver's lanes (lanes.py); True if anything was
        changed. One charon: nothing to do."""
        return False

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release the VICI session."""
