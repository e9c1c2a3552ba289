"""Where the lanes of one gateway live (drivers/ipsec/lanes.py): lane k's charon marks its own
packets FWMARK + k, routes into its TUN device through routing table 220 + k and does IKE on
its own UDP ports. charon_conf.py writes the same numbers into each charon's strongswan.conf
(`intercloud charon-config` on a host, the lab's launcher in namespaces)."""

from __future__ import annotations

FWMARK = 0x1C1  # marks charon's own packets (IKE, ESP in UDP) so they bypass table 220
# Every lane's charon marks its own packets FWMARK + lane; each one's policy rule skips the whole
# range, so no charon's ESP is routed into another charon's TUN device (encrypted twice).
FWMARK_RANGE = "0x1c0/0xfff0"
MAX_LANES = 8  # FWMARK + lane stays inside FWMARK_RANGE; routing tables 220..227


def lane_ports(lane: int) -> tuple[int, int]:
    """Lane `lane`'s charon's UDP ports: (IKE `port`, `port_nat_t`); lane 0: charon's own."""
    return (500, 4500) if lane == 0 else (4500 + 10 * lane, 4501 + 10 * lane)


def lane_port(lane: int) -> int:
    """The UDP port lane `lane`'s charon does IKE and ESP-in-UDP on (its NAT-T port)."""
    return lane_ports(lane)[1]


def lane_table(lane: int) -> int:
    """The routing table lane `lane`'s charon routes into its TUN device with (220: charon's)."""
    return 220 + lane
