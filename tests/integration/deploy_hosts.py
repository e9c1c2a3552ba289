"""Two "hosts" for following docs/deploy.md: each a network namespace whose commands see their
own /etc/intercloud, /var/lib/intercloud, /run/intercloud and /etc/systemd/system (directories
of the test bind-mounted over those paths in a private mount namespace), and the few commands a
sandbox without systemd, ssh or a package mirror cannot run, carried out for what they mean
(`Host.emulate`). Everything else in the document runs as written, in bash."""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import intercloud
from tests.waiting import wait_for

REPO = Path(__file__).resolve().parents[2]
PRIVATE = ("/etc/intercloud", "/var/lib/intercloud", "/run/intercloud", "/etc/systemd/system")
INSTALLED = "/usr/local/bin/intercloud"  # where the document links the virtualenv's command
CAPS = {"CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_NET_BIND_SERVICE", "CAP_CHOWN"}


def unit_settings(path: Path, instance: str = "") -> dict[str, str]:
    """The [Service] settings of a unit file (the last of a repeated key), %i = `instance`."""
    settings: dict[str, str] = {}
    section = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
        elif section == "Service" and "=" in line and not line.startswith("#"):
            key, _, value = line.partition("=")
            settings[key.strip()] = value.strip().replace("%i", instance)
    return settings


def setpriv(settings: dict[str, str]) -> list[str]:
    """`CapabilityBoundingSet` and `NoNewPrivileges` as a setpriv prefix."""
    caps = settings.get("CapabilityBoundingSet", "").split()
    assert set(caps) <= CAPS, f"unexpected capabilities {caps}"
    bounding = ",".join(["-all", *(f"+{c.removeprefix('CAP_').lower()}" for c in caps)])
    argv = ["setpriv", f"--bounding-set={bounding}", f"--inh-caps={bounding}"]
    return argv + (["--no-new-privs"] if settings.get("NoNewPrivileges") == "yes" else [])


class Host:
    def __init__(self, name: str, ns: str, address: str, root: Path, peers: dict[str, Host]):
        self.name, self.ns, self.address, self.root, self.peers = name, ns, address, root, peers
        self.units: dict[str, subprocess.Popen[bytes]] = {}
        self.bin = root / "bin"
        self.bin.mkdir(parents=True)
        for path in PRIVATE:
            self.private(path).mkdir(parents=True, mode=0o700)
        # the virtualenv's `intercloud`: this checkout's, with the interpreter running the tests
        src = Path(intercloud.__file__).resolve().parents[1]
        wrapper = self.bin / "intercloud"
        wrapper.write_text(
            f"#!/bin/sh\nPYTHONPATH={shlex.quote(str(src))} exec {sys.executable} -m intercloud"
            ' "$@"\n'
        )
        wrapper.chmod(0o755)

    def private(self, path: str) -> Path:
        return self.root / path.strip("/").replace("/", "-")

    def _mounts(self, private_run: bool = False) -> str:
        steps = [f"mount --bind {self.private(p)} {p}" for p in PRIVATE if p != "/run/intercloud"]
        if private_run:  # the charon unit's TemporaryFileSystem=/run
            steps += ["mount -t tmpfs -o mode=0755 tmpfs /run", "mkdir -p /run/intercloud"]
        steps.append(f"mount --bind {self.private('/run/intercloud')} /run/intercloud")
        return " && ".join(steps)

    def argv(self, command: list[str], private_run: bool = False) -> list[str]:
        """`command` in this host: its namespace, its private directories."""
        inner = f'{self._mounts(private_run)} && exec "$@"'
        return ["ip", "netns", "exec", self.ns, "unshare", "-m", "--propagation", "private"] + [
            "sh",
            "-c",
            inner,
            "sh",
            *command,
        ]

    def env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        path = f"{self.bin}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
        return {"PATH": path, "HOME": "/root", "LANG": "C.UTF-8", **(extra or {})}

    def bash(self, script: str, variables: dict[str, str]) -> str:
        """Run `script` as written (bash -e), in the project's checkout; its output."""
        done = subprocess.run(
            self.argv(["bash", "-e", "-o", "pipefail", "-c", script]),
            cwd=REPO,
            env=self.env(variables),
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert done.returncode == 0, (
            f"host {self.name}: exit {done.returncode}\n{script}\n"
            f"stdout: {done.stdout}\nstderr: {done.stderr}"
        )
        return done.stdout

    # --- what the sandbox cannot run, carried out for what it means ---------------------------

    def emulation(self, line: str) -> Callable[[], str] | None:
        """How to carry out `line` if it is one of those commands (returns its output); None
        for a line that runs as written."""
        try:
            words = shlex.split(line.replace("\\\n", " "))
        except ValueError:  # a line of a here-document, say
            return None
        for prefix, handle in self._handlers().items():
            if words[: len(prefix)] == list(prefix):
                return lambda: handle(words[len(prefix) :])
        return None

    def _handlers(self) -> dict[tuple[str, ...], Callable[[list[str]], str]]:
        return {
            ("apt-get", "update"): lambda _: "",
            ("apt-get", "install"): self._apt_install,
            ("python3", "-m", "venv"): lambda _: "",
            ("/opt/intercloud/bin/pip", "install"): self._pip_install,
            ("ln", "-sf", "/opt/intercloud/bin/intercloud", INSTALLED): lambda _: "",
            ("systemctl", "daemon-reload"): lambda _: "",
            ("systemctl", "enable", "--now"): self._start_units,
            ("systemctl", "start"): self._start_units,
            ("systemctl", "stop"): self._stop_units,
            ("scp",): self._scp,
            ("journalctl",): self._journal,
        }

    def _apt_install(self, args: list[str]) -> str:
        packages = [a for a in args if not a.startswith("-")]
        done = subprocess.run(
            ["dpkg-query", "-W", "-f", "${Package} ${db:Status-Status}\n", *packages],
            capture_output=True,
            text=True,
        )
        installed = {p for p, _, s in (x.partition(" ") for x in done.stdout.splitlines()) if s}
        assert set(packages) <= installed, f"not installed: {set(packages) - installed}"
        return done.stdout

    def _pip_install(self, args: list[str]) -> str:
        return self.bash("intercloud --version", {})

    def _scp(self, args: list[str]) -> str:
        source, target = args
        host_ip, _, path = target.partition(":")
        peer = next(h for h in self.peers.values() if h.address == host_ip.partition("@")[2])
        data = subprocess.run(self.argv(["cat", source]), check=True, capture_output=True).stdout
        subprocess.run(
            peer.argv(["sh", "-c", 'umask 077 && cat > "$1"', "sh", path]), input=data, check=True
        )
        return ""

    # --- units -------------------------------------------------------------------------------

    def unit(self, name: str) -> tuple[str, dict[str, str]]:
        """(unit, its [Service] settings) from this host's /etc/systemd/system."""
        base, _, instance = name.removesuffix(".service").partition("@")
        file = f"{base}@.service" if instance else f"{base}.service"
        path = self.private("/etc/systemd/system") / file
        return name.removesuffix(".service"), unit_settings(path, instance)

    def _start_units(self, names: list[str]) -> str:
        for name in names:
            self.start(*self.unit(name))
        return ""

    def start(self, name: str, settings: dict[str, str]) -> None:
        """The unit's ExecStart as systemd would run it (see the module's docstring)."""
        command = shlex.split(settings["ExecStart"])
        if command[0] == INSTALLED:
            command[0] = str(self.bin / "intercloud")
        env = dict(v.split("=", 1) for v in shlex.split(settings.get("Environment", "")))
        private_run = settings.get("TemporaryFileSystem") == "/run"
        log = open(self.root / f"{name}.journal", "ab")  # noqa: SIM115 (kept by the Popen)
        self.units[name] = subprocess.Popen(
            self.argv([*setpriv(settings), *command], private_run),
            env=self.env(env),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        wait_for(lambda: self._ready(name), 60, 0.2, f"{name} on host {self.name}")

    def _ready(self, name: str) -> bool:
        process = self.units[name]
        assert process.poll() is None, f"{name} exited: {self.journal(name)[-2000:]}"
        if name.startswith("intercloud-charon@"):
            lane = name.partition("@")[2]
            return (self.private("/run/intercloud") / f"charon-{lane}.vici").exists()
        probe = "exec 3<>/dev/tcp/127.0.0.1/8700"
        argv = ["ip", "netns", "exec", self.ns, "bash", "-c", probe]
        return subprocess.run(argv, capture_output=True).returncode == 0

    def _stop_units(self, names: list[str]) -> str:
        for name in names:
            self.stop(name.removesuffix(".service"))
        return ""

    def stop(self, name: str) -> None:
        process = self.units.pop(name, None)
        if process is None or process.poll() is not None:
            return
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(5)

    def stop_all(self) -> None:
        for name in reversed(list(self.units)):
            self.stop(name)

    def journal(self, name: str) -> str:
        path = self.root / f"{name}.journal"
        return path.read_text(errors="replace") if path.exists() else ""

    def _journal(self, args: list[str]) -> str:
        name = args[args.index("-u") + 1]
        lines = int(args[args.index("-n") + 1]) if "-n" in args else 10
        text = "\n".join(self.journal(name).splitlines()[-lines:])
        assert text, f"{name} on host {self.name} logged nothing"
        return text


def mount_points() -> list[str]:
    """Make the private paths' mount points on the machine; those made (to remove after)."""
    made = []
    for path in PRIVATE:
        if not os.path.isdir(path):
            os.makedirs(path)
            made.append(path)
    return made


def remove_mount_points(made: list[str]) -> None:
    for path in reversed(made):
        with contextlib.suppress(OSError):
            os.rmdir(path)


def shell_blocks(text: str) -> list[str]:
    return re.findall(r"^```sh\n(.*?)^```", text, flags=re.S | re.M)
