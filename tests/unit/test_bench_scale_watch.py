"""The scale benchmark's helper that explains its figures: who used the CPU in a window
(bench/scale.py)."""

from bench import scale


def test_cpu_by_whom_counts_growth_new_processes_and_names_agents():
    before = {1: ("python", 10.0), 2: ("ip", 1.0), 3: ("sleep", 5.0)}
    after = {1: ("python", 12.5), 2: ("ip", 1.0), 4: ("ip", 0.25), 5: ("python", 0.5)}
    used = scale.cpu_by_whom(before, after, {1: "agent A"})
    assert used == {"agent A": 2.5, "python": 0.5, "ip": 0.25}  # pid 3 ended: not counted
    assert list(used) == ["agent A", "python", "ip"]  # the largest first
