"""Runs in a gateway: polls GET URL every 20 ms until the link's state is "up"; prints "ready"
first, then the wall time it saw "up".

    python -I poll_link_up.py URL TOKEN TIMEOUT CAFILE
"""

from __future__ import annotations

import ssl
import sys
import time

import httpx


def main() -> None:
    url, token, timeout, ca = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4]
    tls = ssl.create_default_context(cafile=ca)
    c = httpx.Client(headers={"Authorization": "Bearer " + token}, timeout=2.0, verify=tls)
    print("ready", flush=True)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            r = c.get(url)
            if r.status_code == 200 and r.json()["status"]["state"] == "up":
                print(time.time(), flush=True)
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.02)
    c.close()


if __name__ == "__main__":
    main()
