"""`python -m bench.layout [--runs 3] [--reps 3]` (root; from the repository root): the
unencrypted expansion against plain kernel VXLAN built by hand, TCP `iperf3 -P 10`, the two
alternated rep by rep, in `runs` groups of `reps`; the ratio of medians per group and over all.
`--affinity 0,1` pins iperf3's client and server to those CPUs in both configurations.
The data-plane section of `python -m bench` measures the same pair among others; this is the
quick check of issue 19's "≥ 0.99× plain VXLAN in 3 runs of 3"."""

from __future__ import annotations

import argparse
import os
import statistics
import sys

from bench import dataplane
from bench.measure import Mode
from bench.run import Run


def _spread(reps: list[float]) -> str:
    return " ".join(f"{g:.2f}" for g in reps)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument(
        "--affinity",
        metavar="CLIENT,SERVER",
        help="pin iperf3's client and server to these CPUs (iperf3 -A), both configurations",
    )
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        parser.error("needs root (network namespaces)")
    run = Run(Mode.make(False), 10)
    try:
        cfgs = dataplane.build_plain(run.topo)
        cfgs.append(dataplane.fill_lab(run.lab("u"), encrypt=False))
        cfgs = [c for c in cfgs if c.key in ("vxlan", "ic_plain")]
        mode = Mode(
            False, tcp_seconds=5, tcp_reps=args.runs * args.reps, tcp_affinity=args.affinity
        )
        dataplane.measure_all(cfgs, mode, run.log, tcp_only={c.key for c in cfgs})
        plain, ours = (
            next(c.suite.tcp_runs for c in cfgs if c.key == k) for k in ("vxlan", "ic_plain")
        )
        n = args.reps
        for i in range(args.runs):
            plain_reps, our_reps = plain[i * n : (i + 1) * n], ours[i * n : (i + 1) * n]
            a, b = statistics.median(plain_reps), statistics.median(our_reps)
            print(
                f"run {i + 1}: plain VXLAN {a:.3f} Gb/s, expansion {b:.3f} Gb/s, ratio {b / a:.3f}"
                f" (reps: plain {_spread(plain_reps)}, expansion {_spread(our_reps)})"
            )
        ratio = statistics.median(ours) / statistics.median(plain)
        print(
            f"all {len(ours)}: ratio {ratio:.3f} (target >= 0.99); load average {os.getloadavg()}"
        )
    finally:
        run.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
