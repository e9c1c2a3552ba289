"""The scale benchmark's helpers that judge its figures: who used the CPU in a window, and
which link events count a device as up (bench/scale.py)."""

from bench import scale


def test_cpu_by_whom_counts_growth_new_processes_and_names_agents():
    before = {1: ("python", 10.0), 2: ("ip", 1.0), 3: ("sleep", 5.0)}
    after = {1: ("python", 12.5), 2: ("ip", 1.0), 4: ("ip", 0.25), 5: ("python", 0.5)}
    used = scale.cpu_by_whom(before, after, {1: "agent A"})
    assert used == {"agent A": 2.5, "python": 0.5, "ip": 0.25}  # pid 3 ended: not counted
    assert list(used) == ["agent A", "python", "ip"]  # the largest first


def test_link_events_parse_name_flags_and_deletions():
    up = "3: icv7: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 master tn7 state UNKNOWN"
    down = "3: icv7: <BROADCAST,MULTICAST> mtu 1500 qdisc noop master tn7 state DOWN"
    veth = "9: icp2@if8: <BROADCAST,MULTICAST,UP> mtu 1500"
    gone = "Deleted 3: icv7: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500"
    parsed = [scale._EVENT_RE.match(x) for x in (up, down, veth, gone)]
    assert [(m[1], m[2], "UP" in m[3].split(",")) for m in parsed if m] == [
        (None, "icv7", True),
        (None, "icv7", False),
        (None, "icp2", True),
        ("Deleted ", "icv7", True),
    ]
    assert scale._EVENT_RE.match("    link/ether 2e:36:e1:32:7b:e1") is None
