"""Start and stop one strongSwan charon per network namespace (the lab, tests, benchmarks).

Each instance is fully separate from the host's strongSwan: its own ``strongswan.conf``
(``STRONGSWAN_CONF``; nothing from /etc/strongswan.d is included), its own VICI socket
(``unix://<workdir>/charon.vici``), its own log file and its own /run (charon refuses to start
when another instance's pid file is in /run, so /run is bind-mounted from ``<workdir>/run``
inside a private mount namespace). The process runs inside the given network namespace:

    ip netns exec NS unshare -m --propagation private \\
        sh -c 'mount --bind <workdir>/run /run && exec /usr/lib/ipsec/charon'

``ip netns exec``, ``unshare`` and ``exec`` replace each other, so the started pid is charon's.

Its strongswan.conf is `drivers/ipsec/charon_conf.py`'s (the same text a host gets from
`intercloud charon-config`), logging to ``<workdir>/charon.log``.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import socket
import time
from pathlib import Path

from intercloud.drivers.ipsec.charon_conf import BASE_PLUGINS, conf_text
from intercloud.drivers.ipsec.lane_layout import (
    FWMARK,
    MAX_LANES,
    lane_port,
    lane_ports,
    lane_table,
)
from intercloud.errors import DriverError
from intercloud.lab import processes

__all__ = [
    "BASE_PLUGINS",
    "FWMARK",
    "MAX_LANES",
    "Charon",
    "conf_text",
    "lane_dir",
    "lane_port",
    "lane_ports",
    "lane_table",
]

CHARON = "/usr/lib/ipsec/charon"


def lane_dir(charon_dir: Path, lane: int) -> Path:
    """Lane 0's charon lives in the gateway's charon dir, lane k's in <charon dir>/lane<k>."""
    return charon_dir if lane == 0 else charon_dir / f"lane{lane}"


def start_lanes(netns: str, charon_dir: Path, lanes: int) -> None:
    """The gateway's charon and those of its further lanes, each in its own directory."""
    for k in range(lanes):
        Charon(netns, lane_dir(charon_dir, k), lane=k).start()


class Charon:
    """One charon daemon inside one network namespace (lane > 0: a further one, see
    conf_text)."""

    def __init__(self, netns: str, workdir: Path, *, libipsec: bool = True, lane: int = 0) -> None:
        self.netns = netns
        self.workdir = Path(workdir)
        self.libipsec = libipsec
        self.lane = lane
        self._pid: int | None = None  # processes.py keeps its Popen

    @property
    def socket_path(self) -> str:
        return str(self.workdir / "charon.vici")

    @property
    def log_path(self) -> Path:
        return self.workdir / "charon.log"

    @property
    def conf_path(self) -> Path:
        return self.workdir / "strongswan.conf"

    @property
    def pid(self) -> int | None:
        return self._pid

    def alive(self) -> bool:
        return processes.pid_alive(self._pid)

    def start(self, timeout: float = 15.0) -> None:
        if self.alive():
            return
        if not Path("/run/netns", self.netns).exists():
            raise DriverError(f"charon: network namespace {self.netns!r} does not exist")
        if not os.access(CHARON, os.X_OK):
            raise DriverError(f"charon: {CHARON} not found (install strongswan-charon)")
        if any(c.isspace() or c in '"{}#=' for c in str(self.workdir)):
            raise DriverError(f"charon: workdir {self.workdir} unusable in strongswan.conf")
        run_dir = self.workdir / "run"
        run_dir.mkdir(parents=True, exist_ok=True)
        for stale in (Path(self.socket_path), run_dir / "charon.pid"):  # of a crashed run
            stale.unlink(missing_ok=True)
        self.conf_path.write_text(
            conf_text(
                f"unix://{self.socket_path}",
                str(self.log_path),
                libipsec=self.libipsec,
                lane=self.lane,
            )
        )
        inner = f"mount --bind {shlex.quote(str(run_dir))} /run && exec {CHARON}"
        argv = ["ip", "netns", "exec", self.netns, "unshare", "-m", "--propagation", "private"]
        argv += ["sh", "-c", inner]
        env = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")}
        env["STRONGSWAN_CONF"] = str(self.conf_path)
        self._pid = processes.start_daemon(
            argv, log=self.workdir / "charon.out", env=env, new_session=False
        )
        deadline = time.monotonic() + timeout
        while True:
            if self._answers():
                return
            code = processes.exit_code(self._pid)
            if code is not None or not processes.pid_alive(self._pid):
                self._pid = None
                raise DriverError(
                    f"charon in {self.netns} exited with {code} during start: {self._tail()}"
                )
            if time.monotonic() > deadline:
                self.stop()
                raise DriverError(
                    f"charon in {self.netns}: VICI socket not answering after {timeout:.0f}s"
                )
            time.sleep(0.1)

    def _answers(self) -> bool:
        """True when the VICI socket accepts a `version` request."""
        if not os.path.exists(self.socket_path):
            return False
        import vici

        sock = socket.socket(socket.AF_UNIX)
        sock.settimeout(2.0)
        try:
            sock.connect(self.socket_path)
            vici.Session(sock).version()
            return True
        except (OSError, Exception):  # not ready yet
            return False
        finally:
            sock.close()

    def _tail(self, lines: int = 5) -> str:
        texts = []
        for p in (self.workdir / "charon.out", self.log_path):
            with contextlib.suppress(OSError):
                texts += p.read_text(errors="replace").splitlines()[-lines:]
        return " | ".join(t.strip() for t in texts if t.strip()) or "no output"

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM (charon then deletes its SAs, routes and TUN device), wait, SIGKILL."""
        pid, self._pid = self._pid, None
        if pid is not None:
            processes.kill_pids([pid], timeout=timeout)

    def __enter__(self) -> Charon:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
