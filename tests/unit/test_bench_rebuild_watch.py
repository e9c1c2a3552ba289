"""The scale benchmark's clock of "reconcile from nothing" reads rtnetlink's link events down to
a name and a flag (bench/rebuild_watch.py): messages made here byte by byte."""

import struct

from bench import rebuild_watch as rw


def message(kind: int, name: str, flags: int, extra: bytes = b"") -> bytes:
    """One rtnetlink link message: header, ifinfomsg, an attribute before the name, the name."""
    mtu = struct.pack("=HHI", 8, 4, 1500)  # IFLA_MTU first: the name is looked for
    raw = name.encode() + b"\0"
    ifname = struct.pack("=HH", 4 + len(raw), rw.IFLA_IFNAME) + raw
    ifname += b"\0" * (-len(ifname) % 4)
    body = struct.pack("=BxHiII", 0, 1, 7, flags, 0) + mtu + ifname + extra
    return struct.pack("=IHHII", 16 + len(body), kind, 0, 0, 0) + body


def test_link_events_name_and_flags_of_each_message_in_a_datagram():
    data = (
        message(rw.RTM_NEWLINK, "icv1", rw.IFF_UP | 0x1000)
        + message(20, "icv2", 0)  # RTM_NEWADDR: not a link event
        + message(rw.RTM_DELLINK, "tn0", 0)
        + message(rw.RTM_NEWLINK, "icb7", 0)
    )
    assert list(rw.link_events(data)) == [
        (rw.RTM_NEWLINK, "icv1", rw.IFF_UP | 0x1000),
        (rw.RTM_DELLINK, "tn0", 0),
        (rw.RTM_NEWLINK, "icb7", 0),
    ]


def test_link_events_stop_at_a_truncated_or_broken_message():
    whole = message(rw.RTM_NEWLINK, "icv1", rw.IFF_UP)
    assert list(rw.link_events(whole + whole[:20])) == [(rw.RTM_NEWLINK, "icv1", rw.IFF_UP)]
    broken = struct.pack("=IHHII", 4, rw.RTM_NEWLINK, 0, 0, 0)  # length below its own header
    assert list(rw.link_events(broken + whole)) == []


def test_ours_counts_the_agents_devices_by_kind():
    names = ["icv1", "icv2", "icb1", "tn0", "ic", "lo", "icp3"]
    assert rw.ours(names) == {"icv": 2, "icb": 1, "icp": 1}
