"""TCP MSS clamping on our bridges with nftables (bridge family), through the `nft` command.

One table per agent, `table bridge intercloud_<prefix>`: its base chain on the forward hook has
one rule, which sends only SYN and SYN/ACK (`tcp flags syn / syn,rst`) on to the chain `clamp`.
There, per MSS value N in use, a set of the tunnel ports clamped to N and four rules: a SYN
entering (`iifname`) or leaving (`oifname`) a port of the set gets its MSS option lowered to N
for IPv4 and N - 20 for IPv6 when it is larger:

    table bridge intercloud_ic {
        set mss_1310 {
            type ifname
            elements = { "icv100", "icv101" }
        }
        chain mss {
            type filter hook forward priority filter; policy accept;
            tcp flags syn / syn,rst jump clamp
        }
        chain clamp {
            iifname @mss_1310 meta protocol ip \
                tcp option maxseg size > 1310 tcp option maxseg size set 1310
            oifname @mss_1310 meta protocol ip ... (the same)
            iifname @mss_1310 meta protocol ip6 ... > 1290 ... set 1290
            oifname @mss_1310 meta protocol ip6 ... > 1290 ... set 1290
        }
    }

Why the gate: every bridged frame passes the forward hook. With the four rules in the base
chain, each frame copied its interface name and looked it up in the set four times; that was
~6 % of the CPU an unencrypted expansion spent per byte (perf, iperf3 -P 10, 2026-12-06). The
gate costs each frame one TCP flags test.

The rules grow with the MSS values in use (a few), not with the ports: a frame is matched
against a hash set, not a list of 4 rules per port (1,000 ports were 4,000 rules, and
listing them cost a converged pass 0.35 s at 1,000 expansions).

Measured on Linux 6.18 with nft 1.0.6: the bridge family parses the IPv4/IPv6 and TCP headers of
bridged frames itself (no br_netfilter needed); `meta l4proto tcp` is implied by the `tcp`
matches (nft drops it when listing), and `meta protocol ip|ip6` picks the MSS per IP version.
Sets hold interface names, so a port may be listed before the device exists.

The table is always written whole, in one `nft -f` transaction (`add table` + `delete table` +
the new table): the forwarding path never sees a half-written table. Reading uses
`nft -j list table` (JSON). `observe` reports interface -> MSS for ports in a set whose four
rules are exactly ours; a port listed twice, or in a set without exactly those rules, is
reported with MSS 0, and anything else in the table (foreign rules, chains, sets; a missing
gate; a table of a former layout: one rule per port, or the rules in the base chain) under the
key "*" (FOREIGN) with 0, so a caller comparing with what it wants sees a difference and
rewrites the table.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterable, Mapping
from typing import Any

from intercloud.drivers.dataplane.linux import checks
from intercloud.drivers.nsexec import in_netns
from intercloud.errors import DriverError

FAMILY = "bridge"
CHAIN = "mss"
CLAMP_CHAIN = "clamp"
SYN_GATE = "tcp flags syn / syn,rst"
FOREIGN = "*"
MIN_MSS, MAX_MSS = 88, 65535
IPV6_EXTRA = 20  # an IPv6 header is 20 bytes longer than an IPv4 one
_PRIO_FILTER = -200
_PREFIX_RE = re.compile(r"[a-z][a-z0-9]{0,15}", re.ASCII)  # fullmatch: no trailing newline


class NftMissing(DriverError):
    """The nft command is not installed."""


def table_name(prefix: str) -> str:
    if not isinstance(prefix, str) or not _PREFIX_RE.fullmatch(prefix):
        raise DriverError(f"cannot name an nftables table after prefix {prefix!r}")
    return f"intercloud_{prefix}"


def _check(rules: Mapping[str, int]) -> dict[str, int]:
    for name, mss in rules.items():
        if not checks.is_ifname(name):
            raise DriverError(f"cannot clamp MSS on {name!r}: not an interface name")
        if isinstance(mss, bool) or not isinstance(mss, int) or not MIN_MSS <= mss <= MAX_MSS:
            raise DriverError(f"cannot clamp MSS on {name} to {mss!r}: not in 88..65535")
    return dict(sorted(rules.items()))


_SET_RE = re.compile(r"mss_([0-9]{2,5})", re.ASCII)
ELEMENTS_PER_LINE = 50


def _set_name(mss: int) -> str:
    return f"mss_{mss}"


def _rule(direction: str, set_name: str, proto: str, mss: int) -> str:
    size = "tcp option maxseg size"
    return f"{direction} @{set_name} meta protocol {proto} {size} > {mss} {size} set {mss}"


def _set_lines(name: str, kind: str, elements: list[str]) -> list[str]:
    """A set of `kind` holding `elements` (written as nft reads them; never empty: a value
    no port uses has no set), ELEMENTS_PER_LINE to a line."""
    rows = [
        ", ".join(elements[i : i + ELEMENTS_PER_LINE])
        for i in range(0, len(elements), ELEMENTS_PER_LINE)
    ]
    return [
        f"\tset {name} {{",
        f"\t\ttype {kind}",
        "\t\telements = { " + ",\n\t\t\t".join(rows) + " }",
        "\t}",
    ]


def _ports_set(name: str, ifnames: list[str]) -> list[str]:
    return _set_lines(name, "ifname", [f'"{checks.ifname(n, "clamped port")}"' for n in ifnames])


def _transaction(
    table: str,
    chain: str,
    rules: list[str],
    sets: list[str] | None = None,
    gate: tuple[str, str] | None = None,
) -> str:
    """Replace `table` (bridge family) whole, in one transaction: the `sets` lines, then one
    base chain on the forward hook holding `rules`; no rules, no table. With `gate` (match,
    chain name), the base chain holds only `<match> jump <chain name>` and that regular chain
    holds `rules`."""
    table = f"{FAMILY} {table}"
    lines = [f"add table {table}", f"delete table {table}"]
    if not rules:
        return "\n".join(lines) + "\n"
    lines += [f"table {table} {{", *(sets or []), f"\tchain {chain} {{"]
    lines.append("\t\ttype filter hook forward priority filter; policy accept;")
    if gate is not None:
        lines += [f"\t\t{gate[0]} jump {gate[1]}", "\t}", f"\tchain {gate[1]} {{"]
    lines += [f"\t\t{checks.one_line(rule)}" for rule in rules]
    lines += ["\t}", "}"]
    return "\n".join(lines) + "\n"


def _our_chain(body: dict[str, Any], chain: str) -> bool:
    """A listed chain is the one _transaction() writes."""
    return (
        body.get("name"),
        body.get("type"),
        body.get("hook"),
        body.get("prio"),
        body.get("policy"),
    ) == (chain, "filter", "forward", _PRIO_FILTER, "accept")


def render(prefix: str, rules: Mapping[str, int]) -> str:
    """The `nft -f` transaction that makes the table hold exactly `rules` (none: no table)."""
    ports: dict[int, list[str]] = {}
    for name, mss in _check(rules).items():
        ports.setdefault(mss, []).append(name)
    return _transaction(
        table_name(prefix),
        CHAIN,
        [
            _rule(direction, _set_name(mss), proto, value)
            for mss in sorted(ports)
            for proto, value in (("ip", mss), ("ip6", mss - IPV6_EXTRA))
            for direction in ("iifname", "oifname")
        ],
        [line for mss in sorted(ports) for line in _ports_set(_set_name(mss), ports[mss])],
        gate=(SYN_GATE, CLAMP_CHAIN),
    )


_SYN_MATCH = {
    "op": "==",
    "left": {"&": [{"payload": {"protocol": "tcp", "field": "flags"}}, ["syn", "rst"]]},
    "right": "syn",
}
_GATE_EXPRS = [{"match": _SYN_MATCH}, {"jump": {"target": CLAMP_CHAIN}}]


def _our_clamp_chain(body: dict[str, Any]) -> bool:
    """A listed chain is the regular chain `clamp` that render() writes (no hook)."""
    return body.get("name") == CLAMP_CHAIN and not {"type", "hook", "prio", "policy"} & set(body)


_MAXSEG = {"tcp option": {"name": "maxseg", "field": "size"}}


def _parse_rule(exprs: list[Any]) -> tuple[str, str, str, int] | None:
    """(direction, "@set", proto, mss) of a rule written by render(), else None."""
    try:
        return _parse_exprs(exprs)
    except (AttributeError, TypeError):  # a shape we never write
        return None


def _parse_exprs(exprs: list[Any]) -> tuple[str, str, str, int] | None:
    if len(exprs) != 4 or not all(isinstance(e, dict) and len(e) == 1 for e in exprs):
        return None
    iface, proto, above, mangle = (e.get("match") or e.get("mangle") for e in exprs)
    if not all(isinstance(x, dict) for x in (iface, proto, above, mangle)):
        return None
    direction = iface.get("left", {}).get("meta", {}).get("key")
    ifname = iface.get("right")
    if (
        "mangle" not in exprs[3]
        or direction not in ("iifname", "oifname")
        or iface.get("op") != "=="
        or not isinstance(ifname, str)
        or proto.get("left") != {"meta": {"key": "protocol"}}
        or proto.get("op") != "=="
        or proto.get("right") not in ("ip", "ip6")
        or above.get("left") != _MAXSEG
        or above.get("op") != ">"
        or mangle.get("key") != _MAXSEG
        or above.get("right") != mangle.get("value")
        or not isinstance(mangle.get("value"), int)
    ):
        return None
    return direction, ifname, proto["right"], mangle["value"]


def _our_set(body: dict[str, Any], table: str) -> list[str] | None:
    """The elements of a listed set as render() writes it (interface names), else None."""
    elems = body.get("elem", [])
    if (
        body.get("table") != table
        or not _SET_RE.fullmatch(str(body.get("name")))
        or body.get("type") != "ifname"
        or set(body) - {"family", "name", "table", "type", "handle", "elem"}
        or not isinstance(elems, list)
        or not all(isinstance(e, str) for e in elems)
    ):
        return None
    return elems


def parse(listing: dict[str, Any], prefix: str) -> dict[str, int]:
    """interface -> MSS from `nft -j list table` output (module docstring for 0 and "*")."""
    table = table_name(prefix)
    sets: dict[str, list[str]] = {}
    seen: dict[str, list[tuple[str, str, int]]] = {}  # set name -> its rules
    gates = 0
    foreign = False
    for item in listing.get("nftables", []):
        kind, body = next(iter(item.items()))
        if kind in ("metainfo", "table"):
            continue
        if kind == "chain":
            foreign |= not (_our_chain(body, CHAIN) or _our_clamp_chain(body))
        elif kind == "set" and (elems := _our_set(body, table)) is not None:
            sets[body["name"]] = elems
        elif kind == "rule" and body.get("table") == table and body.get("chain") == CHAIN:
            gates += 1
            foreign |= body.get("expr") != _GATE_EXPRS  # e.g. the rules of a former layout
        elif kind == "rule" and body.get("table") == table and body.get("chain") == CLAMP_CHAIN:
            parsed = _parse_rule(body.get("expr", []))
            if parsed is None or not parsed[1].startswith("@"):
                foreign = True  # not ours, or one rule per port (a former layout)
            else:
                direction, ref, proto, mss = parsed
                seen.setdefault(ref[1:], []).append((direction, proto, mss))
        else:
            foreign = True
    foreign |= bool(set(seen) - set(sets))  # a rule on a set that is not ours
    foreign |= gates != (1 if sets else 0)  # without its one gate, no SYN reaches the rules
    result: dict[str, int] = {}
    for name, elems in sorted(sets.items()):
        mss = int(name[len("mss_") :])
        expected = {(d, "ip", mss) for d in ("iifname", "oifname")}
        expected |= {(d, "ip6", mss - IPV6_EXTRA) for d in ("iifname", "oifname")}
        found = seen.get(name, [])
        ok = len(found) == 4 and set(found) == expected and MIN_MSS <= mss <= MAX_MSS
        for ifname in elems:
            result[ifname] = 0 if ifname in result or not ok else mss  # twice: never right
    if foreign:
        result[FOREIGN] = 0
    return dict(sorted(result.items()))


def _argv(netns: str | None, args: list[str]) -> list[str]:
    if shutil.which("nft") is None:
        raise NftMissing("cannot clamp TCP MSS: the nft command is missing (install nftables)")
    return in_netns(["nft", *args], netns)


def _run(netns: str | None, args: list[str], stdin: str | None = None, what: str = "") -> str:
    try:
        done = subprocess.run(
            _argv(netns, args), input=stdin, capture_output=True, text=True, timeout=30
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise DriverError(f"cannot {what}: {exc}") from exc
    if done.returncode != 0:
        reason = done.stderr.strip().splitlines()
        raise DriverError(f"cannot {what}: {reason[0] if reason else 'nft failed'}")
    return done.stdout


def observe_mss_clamp(table_prefix: str, netns: str | None = None) -> dict[str, int]:
    """What our table clamps (interface -> MSS); {} when there is no table."""
    table = table_name(table_prefix)
    if table not in _tables(netns):
        return {}
    out = _run(netns, ["-j", "list", "table", FAMILY, table], what=f"list table {table}")
    return parse(json.loads(out), table_prefix)


def ensure_mss_clamp(table_prefix: str, rules: Mapping[str, int], netns: str | None = None) -> bool:
    """Make our table clamp exactly `rules`; one atomic transaction, only if it differs.
    An empty mapping removes the table. Returns whether anything changed."""
    wanted = _check(rules)
    if observe_mss_clamp(table_prefix, netns) == wanted:
        return False
    text = render(table_prefix, wanted)
    _run(netns, ["-f", "-"], stdin=text, what=f"write table {table_name(table_prefix)}")
    return True


def remove_mss_clamp(table_prefix: str, netns: str | None = None) -> None:
    """Delete our table (no error when it is absent)."""
    text = render(table_prefix, {})
    _run(netns, ["-f", "-"], stdin=text, what=f"delete table {table_name(table_prefix)}")


# -- Relay filter: in/out port pairs the bridge must not forward between ---------------------
# A second table, `table bridge intercloud_<prefix>_relay`: a set `pairs` of (in, out)
# interface name pairs and one rule on the forward hook, `iifname . oifname @pairs drop`. The
# origin of a network uses it so that two members which talk directly are not also relayed
# (domain/relay.py). One hash lookup per bridged frame, however many pairs: with one rule per
# pair, every frame of every network walked all of them.
RELAY_CHAIN = "relay"
RELAY_SET = "pairs"
RELAY_RULE = f"iifname . oifname @{RELAY_SET} drop"
FOREIGN_PAIR = ("*", "*")
_RELAY_EXPRS = [
    {
        "match": {
            "op": "==",
            "left": {"concat": [{"meta": {"key": "iifname"}}, {"meta": {"key": "oifname"}}]},
            "right": f"@{RELAY_SET}",
        }
    },
    {"drop": None},
]


def relay_table(prefix: str) -> str:
    return table_name(prefix) + "_relay"


def _check_pairs(pairs: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    out = sorted(set(pairs))
    for pair in out:
        if len(pair) != 2 or not all(checks.is_ifname(x) for x in pair):
            raise DriverError(f"cannot filter forwarding between {pair!r}: not interface names")
    return out


def render_relay(prefix: str, pairs: Iterable[tuple[str, str]]) -> str:
    """The `nft -f` transaction that makes the relay table drop exactly `pairs` (none: no
    table)."""
    elements = [f'"{i}" . "{o}"' for i, o in _check_pairs(pairs)]
    rules = [RELAY_RULE] if elements else []
    sets = _set_lines(RELAY_SET, "ifname . ifname", elements)
    return _transaction(relay_table(prefix), RELAY_CHAIN, rules, sets)


def _relay_elements(body: dict[str, Any], table: str) -> set[tuple[str, str]] | None:
    """The pairs of a listed set as render_relay() writes it, else None."""
    elems = body.get("elem", [])
    if (
        body.get("table") != table
        or body.get("name") != RELAY_SET
        or body.get("type") != ["ifname", "ifname"]
        or set(body) - {"family", "name", "table", "type", "handle", "elem"}
        or not isinstance(elems, list)
    ):
        return None
    pairs = set()
    for elem in elems:
        pair = elem.get("concat") if isinstance(elem, dict) else None
        if not isinstance(pair, list) or [type(x) for x in pair] != [str, str]:
            return None
        pairs.add((pair[0], pair[1]))
    return pairs


def parse_relay(listing: dict[str, Any], prefix: str) -> set[tuple[str, str]]:
    """The dropped (in, out) pairs from `nft -j list table`; anything not written by
    render_relay() (a table of the former layout, one rule per pair, included) adds
    FOREIGN_PAIR, so a caller sees a difference and rewrites the table."""
    table = relay_table(prefix)
    pairs: set[tuple[str, str]] = set()
    rules, foreign = 0, False
    for item in listing.get("nftables", []):
        kind, body = next(iter(item.items()))
        if kind in ("metainfo", "table"):
            continue
        if kind == "chain":
            foreign |= not _our_chain(body, RELAY_CHAIN)
        elif kind == "set" and (found := _relay_elements(body, table)) is not None:
            pairs |= found
        elif kind == "rule" and body.get("table") == table and body.get("chain") == RELAY_CHAIN:
            rules += 1
            foreign |= body.get("expr") != _RELAY_EXPRS
        else:
            foreign = True
    if foreign or rules != (1 if pairs else 0):
        pairs.add(FOREIGN_PAIR)
    return pairs


def _tables(netns: str | None) -> set[str]:
    listed = _run(netns, ["-j", "list", "tables", FAMILY], what="list nftables tables")
    return {
        item["table"].get("name")
        for item in json.loads(listed or "{}").get("nftables", [])
        if "table" in item
    }


def observe_no_forward(table_prefix: str, netns: str | None = None) -> set[tuple[str, str]]:
    table = relay_table(table_prefix)
    if table not in _tables(netns):
        return set()
    out = _run(netns, ["-j", "list", "table", FAMILY, table], what=f"list table {table}")
    return parse_relay(json.loads(out), table_prefix)


def ensure_no_forward(
    table_prefix: str, pairs: Iterable[tuple[str, str]], netns: str | None = None
) -> bool:
    """Make the relay table drop exactly `pairs`, atomically, only if it differs."""
    wanted = set(_check_pairs(pairs))
    if observe_no_forward(table_prefix, netns) == wanted:
        return False
    text = render_relay(table_prefix, wanted)
    _run(netns, ["-f", "-"], stdin=text, what=f"write table {relay_table(table_prefix)}")
    return True


def remove_no_forward(table_prefix: str, netns: str | None = None) -> None:
    text = render_relay(table_prefix, ())
    _run(netns, ["-f", "-"], stdin=text, what=f"delete table {relay_table(table_prefix)}")
