"""Runs in a gateway: waits for a new bridge of the agent (icb*, not in BEFORE) and enslaves
PORT to it at once; prints "ready" first, then the bridge's name.

    python -I plug_port.py PORT BEFORE(comma-separated)
"""

from __future__ import annotations

import os
import subprocess
import sys
import time


def main() -> None:
    port, before = sys.argv[1], set(sys.argv[2].split(","))
    print("ready", flush=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        new = [n for n in os.listdir("/sys/class/net") if n.startswith("icb") and n not in before]
        if new:
            subprocess.run(["ip", "link", "set", port, "master", new[0], "up"], check=True)
            print(new[0], flush=True)
            break
        time.sleep(0.005)


if __name__ == "__main__":
    main()
