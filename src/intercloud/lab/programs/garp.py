"""Gratuitous ARPs from a lab VM, as QEMU announces a migrated VM when it resumes: ARP
requests for the VM's own address, broadcast on `ifname`, so every bridge on the way learns
where its MAC now is; five rounds, 50 ms after the start then 100 ms more each (QEMU's
announce-initial/-step/-rounds defaults). Usage: garp.py IFNAME MAC IPV4 (inside the VM)."""

from __future__ import annotations

import socket
import sys
import time


def main() -> int:
    ifname, mac_text, ip_text = sys.argv[1:4]
    mac = bytes.fromhex(mac_text.replace(":", ""))
    ip = socket.inet_aton(ip_text)
    arp = b"\x00\x01\x08\x00\x06\x04\x00\x01" + mac + ip + b"\x00" * 6 + ip
    with socket.socket(socket.AF_PACKET, socket.SOCK_RAW) as s:
        s.bind((ifname, 0))
        for i in range(5):
            time.sleep(0.05 + 0.1 * i if i else 0.05)
            s.send(b"\xff" * 6 + mac + b"\x08\x06" + arp)
    return 0


if __name__ == "__main__":
    sys.exit(main())
