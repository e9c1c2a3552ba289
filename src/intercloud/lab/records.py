"""A lab's names and its record (lab.json, typed in state.py): where things are, read and
changed under a lock. The base of `intercloud.lab.topology.Lab`."""

from __future__ import annotations

import fcntl
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from intercloud.lab.nsexec import LabError
from intercloud.lab.state import CloudRecord, LabState

LAB_ROOT = Path("/var/lib/intercloud-lab")  # not under /run: each charon mounts its own /run
_NAME_RE = re.compile(r"^[a-z][a-z0-9]{0,7}$")

# Every cloud of a plain lab has projects p1 and p2, each with a tenant network on its bridge.
PROJECTS = ("p1", "p2")
NETWORKS = (("net1", "p1", "10.10.0.0/24"), ("net2", "p2", "10.10.0.0/24"))


class LabRecords:
    """A federation of clouds in network namespaces; its record is <state_dir>/lab.json."""

    def __init__(self, name: str = "icl", state_dir: Path | str | None = None) -> None:
        if not _NAME_RE.match(name):
            raise LabError(
                f"lab name must be 1-8 lowercase letters or digits, starting with a "
                f"letter (got {name!r})"
            )
        self.name = name
        self.state_dir = Path(state_dir) if state_dir else LAB_ROOT / name

    # --- names ------------------------------------------------------------------------------------

    @property
    def wan_ns(self) -> str:
        return f"{self.name}-wan"

    def gw_ns(self, cloud: str) -> str:
        return f"{self.name}-gw-{cloud.lower()}"

    def vm_ns(self, cloud: str, vm: str) -> str:
        return f"{self.name}-{cloud.lower()}-{vm}"

    # --- the record -------------------------------------------------------------------------------

    @property
    def state_file(self) -> Path:
        return self.state_dir / "lab.json"

    def exists(self) -> bool:
        return self.state_file.exists()

    def state(self) -> LabState:
        try:
            return LabState.load(self.state_file)
        except FileNotFoundError:
            raise LabError(
                f"lab {self.name} is not up (no {self.state_file}); run lab up"
            ) from None

    def _save(self, st: LabState) -> None:
        st.save(self.state_file)

    @contextmanager
    def _edit(self) -> Iterator[LabState]:
        """Read-modify-write lab.json under a lock (several CLI calls may run at once)."""
        self.state()  # a clear error if the lab is not up
        with open(self.state_dir / "lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            st = self.state()
            yield st
            self._save(st)

    @property
    def clouds(self) -> list[str]:
        return list(self.state().clouds)

    def cloud(self, cloud: str) -> CloudRecord:
        clouds = self.state().clouds
        try:
            return clouds[cloud.upper()]
        except KeyError:
            raise LabError(
                f"lab {self.name} has no cloud {cloud!r} (clouds: {', '.join(clouds)})"
            ) from None

    def ip(self, cloud: str) -> str:
        """The cloud's underlay address (its gateway's eth0)."""
        return self.cloud(cloud).ip

    def token(self, cloud: str, which: str | None = "admin") -> str | None:
        """`admin`, a project name (`p1`), None (no token) or any other string, used verbatim."""
        c = self.cloud(cloud)
        if which is None:
            return None
        if which == "admin":
            return c.admin_token
        return c.projects.get(which, which)
