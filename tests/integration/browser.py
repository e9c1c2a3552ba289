"""A real headless Chromium (Debian's `chromium`) inside a lab namespace, driven over the
DevTools protocol on a pipe (`--remote-debugging-pipe`: the browser reads commands on its fd 3
and writes answers on its fd 4, each a JSON message ended by a NUL byte), so a test watches one
page live without a websocket client or any Python dependency.

The browser trusts exactly one server key (`--ignore-certificate-errors-spki-list`, the SHA-256
of the agent's public key, as a pin): Chromium reads CAs from an NSS database only, and a pin
of the key the lab's CA certified for that agent is narrower than trusting the CA.

`Browser` is a context manager: on leaving (failure included) every process of the browser is
killed, found by its own user-data directory, and that none is left is checked."""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import json
import os
import select
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from intercloud.lab import nsexec

FLAGS = [
    "--headless",
    "--no-sandbox",  # root in a namespace: Chromium's sandbox needs user namespaces
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--window-size=1200,900",
]


def spki_pin(cert_pem: Path) -> str:
    """base64(SHA-256(SubjectPublicKeyInfo)) of a certificate: what Chromium's pin list takes."""
    cert = x509.load_pem_x509_certificate(cert_pem.read_bytes())
    der = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(hashlib.sha256(der).digest()).decode()


def _high(fd: int) -> int:
    moved = fcntl.fcntl(fd, fcntl.F_DUPFD, 10)
    os.close(fd)
    return moved


def installed() -> str | None:
    return shutil.which("chromium")


class Browser:
    def __init__(self, netns: str, workdir: Path, pin: str) -> None:
        self.netns, self.pin = netns, pin
        self.profile = workdir / "chromium-profile"
        self.log = workdir / "chromium.log"
        self._proc: subprocess.Popen[bytes] | None = None
        self._next = 0
        self._buffer = b""
        self.session = ""

    def __enter__(self) -> Browser:
        self.profile.mkdir(parents=True, exist_ok=True)
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()
        # the browser's ends above fd 9, so moving them to 3 and 4 overwrites neither
        to_browser_r, from_browser_w = (_high(to_browser_r), _high(from_browser_w))
        argv = [
            "chromium",
            *FLAGS,
            f"--user-data-dir={self.profile}",
            f"--ignore-certificate-errors-spki-list={self.pin}",
            "--remote-debugging-pipe",
            "about:blank",
        ]
        # the browser's fds 3 and 4 are the two pipes (bash moves them there, then execs; dash
        # takes one-digit fds only)
        shell = f'exec "$@" 3<&{to_browser_r} 4>&{from_browser_w}'
        with self.log.open("wb") as log:
            self._proc = subprocess.Popen(
                nsexec.exec_argv(self.netns, ["bash", "-c", shell, "bash", *argv]),
                pass_fds=(to_browser_r, from_browser_w),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
        os.close(to_browser_r)
        os.close(from_browser_w)
        try:
            targets = self.call("Target.getTargets", timeout=60)["targetInfos"]
            page = next(t for t in targets if t["type"] == "page")
            self.session = self.call(
                "Target.attachToTarget", {"targetId": page["targetId"], "flatten": True}
            )["sessionId"]
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            if self._proc is not None and self._proc.poll() is None:
                with contextlib.suppress(Exception):  # then killed below
                    self.call("Browser.close", timeout=5)
                    self._proc.wait(timeout=10)
        finally:
            self._kill_all()
            for fd in (self._to_browser, self._from_browser):
                with contextlib.suppress(OSError):
                    os.close(fd)

    def _leftovers(self) -> list[int]:
        """Pids of processes of this browser: their command line names its own profile."""
        mark = f"--user-data-dir={self.profile}".encode()
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                if mark in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue  # gone meanwhile
        return found

    def _kill_all(self) -> None:
        if self._proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._proc.pid, signal.SIGKILL)
            self._proc.wait(timeout=10)
        deadline = time.monotonic() + 10
        while (left := self._leftovers()) and time.monotonic() < deadline:
            for pid in left:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.2)
        assert not self._leftovers(), "chromium processes left behind"

    # --- the DevTools protocol ----------------------------------------------------------------

    def call(
        self, method: str, params: dict[str, Any] | None = None, timeout: float = 30
    ) -> dict[str, Any]:
        self._next += 1
        message: dict[str, Any] = {"id": self._next, "method": method, "params": params or {}}
        if self.session and not method.startswith(("Target.", "Browser.")):
            message["sessionId"] = self.session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            for answer in self._messages(deadline, method):
                if answer.get("id") == self._next:
                    if "error" in answer:
                        raise RuntimeError(f"{method}: {answer['error']}")
                    return answer.get("result", {})

    def _messages(self, deadline: float, method: str) -> list[dict[str, Any]]:
        left = deadline - time.monotonic()
        ready, _, _ = select.select([self._from_browser], [], [], max(left, 0))
        if not ready:
            raise TimeoutError(f"chromium did not answer {method}; log: {self.log}")
        data = os.read(self._from_browser, 1 << 20)
        if not data:
            raise RuntimeError(f"chromium closed its pipe during {method}; log: {self.log}")
        self._buffer += data
        *complete, self._buffer = self._buffer.split(b"\0")
        return [json.loads(m) for m in complete]

    def open(self, url: str) -> str | None:
        """Navigate to `url`; the browser's error (e.g. a certificate it refused), or None."""
        self.call("Page.enable")
        return self.call("Page.navigate", {"url": url}).get("errorText")

    def evaluate(self, expression: str) -> Any:
        answer = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True})
        if "exceptionDetails" in answer:
            raise RuntimeError(f"{expression}: {answer['exceptionDetails']}")
        return answer["result"].get("value")

    def dom(self) -> str:
        return str(self.evaluate("document.documentElement.outerHTML"))

    def screenshot(self, path: Path) -> Path:
        shot = self.call("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True})
        path.write_bytes(base64.b64decode(shot["data"]))
        return path
