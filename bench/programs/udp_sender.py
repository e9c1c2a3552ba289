"""Sends N UDP datagrams of SIZE bytes to HOST's discard port, 2 ms apart.

python -I udp_sender.py HOST SIZE N
"""

from __future__ import annotations

import socket
import sys
import time


def main() -> None:
    host, size, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for _ in range(n):
            s.sendto(b"x" * size, (host, 9))
            time.sleep(0.002)


if __name__ == "__main__":
    main()
