"""Runs in a namespace, the agent's src/ on PYTHONPATH: a tunnel prober
(intercloud.drivers.probe.linux) tracking the N tunnel ports PREFIXv<FIRST>..PREFIXv<FIRST+N-1>
(all toward one peer). After WARMUP seconds it
measures this process's CPU time for SECONDS and prints one JSON line: cpu_s, wall_s, the
frames it sent a second over that time, and what the probes say (answering, silent, sent,
answered). Mode "idle": the same process, the prober
never started (the baseline); "busy": probing, with a thread that holds the interpreter.

    python probe_process.py PREFIX FIRST N WARMUP SECONDS MODE ME PEER
"""

from __future__ import annotations

import json
import resource
import sys
import threading
import time

from intercloud.domain.probe import Verdict
from intercloud.drivers.probe.linux import LinuxProber


def cpu() -> tuple[float, float]:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime, r.ru_stime


def sent(prober: LinuxProber, ports: dict[str, str]) -> int:
    """Frames sent into the ports so far (requests if it leads, answers if it follows)."""
    return sum(h.sent for h in (prober.health(name) for name in ports) if h is not None)


def _spin() -> None:
    while True:
        sum(i * i for i in range(10_000))


def main() -> None:
    prefix, first, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    warmup, seconds, mode = float(sys.argv[4]), float(sys.argv[5]), sys.argv[6]
    me, peer = sys.argv[7], sys.argv[8]
    prober = LinuxProber(prefix, me)
    ports = {f"{prefix}v{first + i}": peer for i in range(n)}
    if mode in ("probe", "busy"):
        prober.start()
        prober.track(ports)
    if mode == "busy":  # a thread that holds the interpreter, as a long reconciler pass does
        threading.Thread(target=_spin, daemon=True).start()
    print("ready", flush=True)
    time.sleep(warmup)
    sent0 = sent(prober, ports)
    c0, w0 = cpu(), time.monotonic()
    time.sleep(seconds)
    c1, w1 = cpu(), time.monotonic()
    sent1 = sent(prober, ports)
    verdicts = [prober.verdict(name) for name in ports]
    healths = [h for h in (prober.health(name) for name in ports) if h is not None]
    prober.stop()
    print(
        json.dumps(
            {
                "cpu_s": c1[0] + c1[1] - c0[0] - c0[1],
                "user_s": c1[0] - c0[0],
                "sys_s": c1[1] - c0[1],
                "wall_s": w1 - w0,
                "answering": verdicts.count(Verdict.ANSWERING),
                "silent": verdicts.count(Verdict.SILENT),
                "sent": sum(h.sent for h in healths),
                "answered": sum(h.answered for h in healths),
                "period_s": prober.period,
                "budget": prober.budget,
                "frames_per_s": (sent1 - sent0) / (w1 - w0),
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
