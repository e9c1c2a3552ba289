"""br-cloud's OpenFlow table and meters, through `ovs-ofctl` on the bridge's management socket:
written whole (`--bundle replace-flows`: atomic, OVS applies only the difference), compared
(`diff-flows`), meters set before the flows that use them and removed after."""

from __future__ import annotations

import os
import subprocess
import tempfile

from intercloud.drivers.dataplane.ovs import flows
from intercloud.errors import DriverError


class FlowTable:
    def __init__(self, bridge: str, rundir: str, timeout: float) -> None:
        self.bridge = bridge
        self.target = f"unix:{os.path.join(rundir, bridge)}.mgmt"
        self.timeout = timeout
        self._written: str | None = None  # the flow text last written (skip identical writes)
        self._meters: dict[int, int] = {}  # the meters last written: id -> kbit/s

    def forget(self) -> None:
        """The bridge is new, gone or not as written: the next write writes everything."""
        self._written, self._meters = None, {}

    def _ofctl(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        try:
            return subprocess.run(
                ["ovs-ofctl", "-O", flows.OPENFLOW, *args],
                input=stdin,
                capture_output=True,
                text=True,
                timeout=self.timeout * 3,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise DriverError(f"ovs-ofctl {args[0]}: {exc}") from exc

    def write(self, want: str, meters: dict[int, int], recorded: dict[int, int]) -> bool:
        """Make the table `want` with `meters` (id -> kbit/s); `recorded`: the meters the
        bridge's records say are installed. False: it was so already (as last written)."""
        if want == self._written and meters == self._meters:
            return False
        had = recorded | self._meters
        # meters before the flows that use them (OVS refuses a flow with an unknown meter)
        for meter, kbit in sorted(meters.items()):
            if self._written is None or had.get(meter) != kbit:
                self._set_meter(meter, kbit)
        proc = self._ofctl("--bundle", "replace-flows", self.target, "-", stdin=want)
        if proc.returncode != 0:
            self._written = None
            raise DriverError(
                f"cannot write the flows of {self.bridge}: {proc.stderr.strip()[-300:]}"
            )
        self._written = want
        for meter in sorted(set(had) - set(meters)):
            # no flow uses it any more; absent already is fine
            self._ofctl("del-meters", self.target, f"meter={meter}")
        self._meters = dict(meters)
        return True

    def _set_meter(self, meter: int, kbit: int) -> None:
        spec = flows.meter_spec(meter, kbit)
        proc = self._ofctl("mod-meter", self.target, spec)
        if proc.returncode != 0:  # not there yet
            proc = self._ofctl("add-meter", self.target, spec)
        if proc.returncode != 0:
            raise DriverError(
                f"cannot set meter {meter} ({kbit} kbit/s) on {self.bridge}: "
                f"{proc.stderr.strip()[-300:]}"
            )

    def matches(self, want: str) -> bool:
        """Whether the bridge's flows are exactly `want` (else the next write is whole)."""
        with tempfile.NamedTemporaryFile("w", suffix=".flows", delete=False) as f:
            f.write(want)
        try:
            proc = self._ofctl("diff-flows", self.target, f.name)
        finally:
            os.unlink(f.name)
        same = proc.returncode == 0 and not proc.stdout.strip()
        if not same:
            self._written = None
        return same
