"""Steering tunnel traffic into the lanes: an nftables table and policy rules (lanes.py says why
there are lanes; domain/lane_balance.py decides which lane a flow takes).

    table ip intercloud_lanes
      ct timeout idle_gap      the outer VXLAN flow's conntrack entry lives GAP_SECONDS
                               after its last packet (then the flow may be placed again)
      map slots                slot i -> lane mark, for the i-th new flow (numgen inc mod 64)
      set down                 marks of lanes that are down
      counter lane0..laneN-1   bytes steered into each lane (the rebalancer's input)
      chain steer  (route)     udp dport 4789: a new conntrack entry gets the idle_gap timeout
                               (after conntrack made it, before it is confirmed: mangle)
                               no lane yet or a lane down: ct mark = slot's lane
                               udp dport 4789: meta mark = ct mark; count per lane

The route hook re-routes a packet whose mark changed, and `ip rule fwmark 0x1d0+k lookup
220+k` (priority 110 + k) sends it into lane k's TUN device. When lane k has no SA its table
has no route, so its packets fall through to lane 0 (still encrypted) until the rebalancer
marks the lane down and its flows are placed on the others.
"""

from __future__ import annotations

import json
import logging
import subprocess
import threading
import time
from collections.abc import Callable

from intercloud.domain import lane_balance
from intercloud.domain.lane_balance import Decision, LaneBalance
from intercloud.drivers.ipsec import lane_layout
from intercloud.drivers.nsexec import in_netns
from intercloud.errors import DriverError, IntercloudError

log = logging.getLogger("intercloud.ipsec")

TABLE = "intercloud_lanes"
STEER_MARK = 0x1D0  # + lane: the mark that picks lane k's routing table
RULE_PRIO = 110  # + lane: before every charon's own rule (220 + lane)
VERSION = "balanced-2"  # in the rule's tag: a table of an older layout is replaced


def wanted_rules(lanes: int) -> set[tuple[int, int, int]]:
    """(priority, fwmark, table) of the policy rules for `lanes` lanes (none for lane 0)."""
    return {(RULE_PRIO + k, STEER_MARK + k, lane_layout.lane_table(k)) for k in range(1, lanes)}


def _checked(lanes: int, vxlan_port: int, decision: Decision) -> None:
    """Every number that goes into the ruleset, checked for that use."""
    if type(lanes) is not int or not 1 <= lanes <= lane_layout.MAX_LANES:
        raise DriverError(f"ipsec lanes: {lanes!r} not in 1..{lane_layout.MAX_LANES}")
    if type(vxlan_port) is not int or not 1 <= vxlan_port <= 65535:
        raise DriverError(f"ipsec lanes: VXLAN port {vxlan_port!r} not in 1..65535")
    slots = decision.slots
    if len(slots) != lane_balance.SLOTS or any(
        type(k) is not int or not 0 <= k < lanes for k in (*slots, *decision.down)
    ):
        raise DriverError("ipsec lanes: placement table out of range")
    if 0 in decision.down or not set(slots).isdisjoint(decision.down):
        raise DriverError("ipsec lanes: placement table names a lane that is down")


def _elements(decision: Decision) -> tuple[str, str]:
    slots = ", ".join(f"{i} : {STEER_MARK + k:#x}" for i, k in enumerate(decision.slots))
    down = ", ".join(f"{STEER_MARK + k:#x}" for k in sorted(decision.down))
    return slots, down


def ruleset(lanes: int, vxlan_port: int, decision: Decision | None = None) -> str:
    """The nftables table that places VXLAN flows on lanes and marks their packets (pure)."""
    decision = decision or lane_balance.even(lanes)
    _checked(lanes, vxlan_port, decision)
    slots, down = _elements(decision)
    n, gap, port = lane_balance.SLOTS, lane_balance.GAP_SECONDS, vxlan_port
    unplaced = f"ct mark and 0xfffffff0 != {STEER_MARK:#x}"  # no lane yet (or not ours)
    counters = "".join(f"    counter lane{k} {{\n    }}\n" for k in range(lanes))
    count = "".join(
        f"        udp dport {port} meta mark {STEER_MARK + k:#x} counter name lane{k}\n"
        for k in range(lanes)
    )
    return f"""table ip {TABLE} {{
    ct timeout idle_gap {{
        protocol udp; l3proto ip; policy = {{ unreplied : {gap}, replied : {gap} }}
    }}
{counters}    map slots {{
        typeof numgen inc mod {n} : meta mark
        elements = {{ {slots} }}
    }}
    set down {{
        type mark
{f"        elements = {{ {down} }}" + chr(10) if down else ""}    }}
    chain steer {{
        type route hook output priority mangle; policy accept;
        udp dport {port} ct timeout set "idle_gap"
        udp dport {port} {unplaced} ct mark set numgen inc mod {n} map @slots \
comment "{tag(lanes, port)}"
        udp dport {port} ct mark @down ct mark set numgen inc mod {n} map @slots
        udp dport {port} meta mark set ct mark
{count}    }}
}}
"""


def placement_script(decision: Decision) -> str:
    """An nft transaction that puts a new placement table and down set in force (pure)."""
    slots, down = _elements(decision)
    script = f"flush map ip {TABLE} slots\nadd element ip {TABLE} slots {{ {slots} }}\n"
    script += f"flush set ip {TABLE} down\n"
    if down:
        script += f"add element ip {TABLE} down {{ {down} }}\n"
    return script


def tag(lanes: int, vxlan_port: int) -> str:
    return f"intercloud lanes={lanes} port={vxlan_port} {VERSION}"


class LaneSteering:
    """The nftables table and policy rules that send VXLAN flows into the lanes."""

    def __init__(self, lanes: int, vxlan_port: int, netns: str | None = None) -> None:
        _checked(lanes, vxlan_port, lane_balance.even(lanes))
        self.lanes, self.vxlan_port, self.netns = lanes, vxlan_port, netns
        self.decision = lane_balance.even(lanes)
        self.lock = threading.Lock()  # the reconciler's pass and the rebalancer share the table

    def _run(self, argv: list[str], stdin: str | None = None, check: bool = True) -> str:
        try:
            r = subprocess.run(
                in_netns(argv, self.netns), input=stdin, capture_output=True, text=True
            )
        except FileNotFoundError as exc:
            raise DriverError(f"ipsec lanes: {argv[0]} not found") from exc
        if check and r.returncode != 0:
            detail = (r.stderr.strip().splitlines() or ["failed"])[-1]
            raise DriverError(f"ipsec lanes: {' '.join(argv[:3])}: {detail}")
        return r.stdout if r.returncode == 0 else ""

    def rules(self) -> set[tuple[int, int, int]]:
        """Our policy rules as they are: priorities 110..117 pointing at a table."""
        out = set()
        for r in json.loads(self._run(["ip", "-j", "rule", "show"]) or "[]"):
            prio = r.get("priority", -1)
            if RULE_PRIO < prio < RULE_PRIO + lane_layout.MAX_LANES:
                mark = int(str(r.get("fwmark", "0")), 0)
                out.add((prio, mark, int(r["table"]) if str(r.get("table")).isdigit() else -1))
        return out

    def _table(self) -> list[dict] | None:
        text = self._run(["nft", "-j", "list", "table", "ip", TABLE], check=False)
        return json.loads(text).get("nftables", []) if text else None

    def tag(self) -> str | None:
        """The comment of our steering rule, None without our table."""
        items = self._table()
        if items is None:
            return None
        comments = [str(i["rule"].get("comment", "")) for i in items if "rule" in i]
        return next((c for c in comments if c), "")

    def counters(self) -> list[int] | None:
        """Bytes steered into each lane since the table was made; None without our table."""
        items = self._table()
        if items is None:
            return None
        found = {
            str(i["counter"]["name"]): int(i["counter"]["bytes"]) for i in items if "counter" in i
        }
        return [found.get(f"lane{k}", 0) for k in range(self.lanes)]

    def lane_up(self, lane: int) -> bool:
        """Lane `lane` can carry packets: its table has a route (its charon installs one while
        its CHILD_SA is up, and it goes with the charon's TUN device). Lane 0 always can."""
        if lane == 0:
            return True
        table = str(lane_layout.lane_table(lane))
        out = self._run(["ip", "-j", "route", "show", "table", table], check=False)
        return bool(json.loads(out or "[]"))  # a table never used is an error: no route

    def ensure(self) -> bool:
        """Make the table and rules match `lanes` (with one lane: none of them). True if
        anything was changed."""
        with self.lock:
            return self._ensure()

    def _ensure(self) -> bool:
        changed = False
        have_tag = self.tag()
        if self.lanes == 1 and have_tag is not None:
            self._run(["nft", "delete", "table", "ip", TABLE])
            changed = True
        elif self.lanes > 1 and have_tag != tag(self.lanes, self.vxlan_port):
            if any(k >= self.lanes for k in (*self.decision.slots, *self.decision.down)):
                self.decision = lane_balance.even(self.lanes)  # fewer lanes than it knew
            script = f"add table ip {TABLE}\ndelete table ip {TABLE}\n"
            script += ruleset(self.lanes, self.vxlan_port, self.decision)
            self._run(["nft", "-f", "-"], script)
            changed = True
        have, want = self.rules(), wanted_rules(self.lanes)
        for prio, _, _ in sorted(have - want):
            self._run(["ip", "rule", "del", "priority", str(prio)])
            changed = True
        for prio, mark, table in sorted(want - have):
            self._run(
                ["ip", "rule", "add", "priority", str(prio), "fwmark", hex(mark), "lookup",
                 str(table)]
            )  # fmt: skip
            changed = True
        return changed

    def apply(self, decision: Decision) -> bool:
        """Put a placement decision in force (if our table is there). True if it changed."""
        with self.lock:
            if decision == self.decision or self.lanes == 1:
                return False
            _checked(self.lanes, self.vxlan_port, decision)
            if self.tag() == tag(self.lanes, self.vxlan_port):
                self._run(["nft", "-f", "-"], placement_script(decision))
            self.decision = decision  # without the table: the next ensure() makes it so
            return True


class LaneBalancer:
    """Every `interval` seconds: each lane's counter and state in, a placement decision out
    (domain/lane_balance.py), into nftables. A failed tick is logged and the next one tries
    again; the steering as it is keeps working meanwhile."""

    def __init__(
        self,
        steering: LaneSteering,
        interval: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.steering, self.interval, self.clock = steering, interval, clock
        self.balance = LaneBalance(steering.lanes)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last = clock()
        self._error = ""

    def tick(self) -> Decision | None:
        s = self.steering
        if self.balance.lanes != s.lanes:
            self.balance = LaneBalance(s.lanes)
        counters = s.counters()
        if counters is None or s.lanes == 1:
            return None
        now = self.clock()
        up = [s.lane_up(k) for k in range(s.lanes)]
        decision = self.balance.update(counters, up, now - self._last)
        self._last = now
        if s.apply(decision) and decision.down:
            log.warning("IPsec lanes %s down: their flows go to the others", sorted(decision.down))
        return decision

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="lane-balancer", daemon=True)
            self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.tick()
                self._error = ""
            except (IntercloudError, ValueError, OSError, KeyError, TypeError) as exc:
                message = str(getattr(exc, "message", exc))
                if message != self._error:
                    log.error("IPsec lanes: rebalancing failed: %s", message)
                self._error = message

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
