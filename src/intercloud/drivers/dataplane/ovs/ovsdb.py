"""The OVS data plane's OVSDB access (ovsdbapp): rows read, commands committed in one
transaction, errors as DriverError naming the database."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from typing import Any

from intercloud.drivers.dataplane.ovs import records as rec
from intercloud.errors import DriverError


def one(value: Any) -> Any:
    """An optional OVSDB column as ovsdbapp returns it: [] means unset."""
    if isinstance(value, list):
        return value[0] if value else None
    return value


class Ovsdb:
    """The node's Open vSwitch database at `db` (e.g. unix:/run/ovs/db.sock)."""

    def __init__(self, db: str, timeout: float) -> None:
        self.db = db
        self.timeout = timeout
        self._api: Any = None
        self._lock = threading.Lock()
        self.on_port_change: Callable[[], None] | None = None  # a Port row made, changed, gone

    @property
    def api(self) -> Any:
        """The ovsdbapp API, connected on first use (the agent may start before OVS)."""
        with self._lock:
            if self._api is None:
                from ovsdbapp.backend.ovs_idl import connection
                from ovsdbapp.schema.open_vswitch import impl_idl

                outer = self

                class _Idl(connection.OvsdbIdl):  # type: ignore[misc]
                    def notify(self, event: Any, row: Any, updates: Any = None) -> None:
                        callback = outer.on_port_change
                        if callback is not None and row._table.name == "Port":
                            callback()

                try:
                    idl = _Idl.from_server(self.db, "Open_vSwitch")
                    conn = connection.Connection(idl=idl, timeout=self.timeout)
                    # ovsdbapp keeps the connection in a class attribute: a subclass per
                    # driver lets several drivers (several OVS) live in one process.
                    cls = type("_Idl", (impl_idl.OvsdbIdl,), {"_ovsdb_connection": None})
                    self._api = cls(conn)
                except Exception as exc:
                    raise DriverError(f"cannot connect to OVSDB at {self.db}: {exc}") from exc
            return self._api

    def close(self) -> None:
        with self._lock:
            if self._api is not None:
                with contextlib.suppress(Exception):
                    self._api.ovsdb_connection.stop()
                self._api = None

    def read(self, cmd: Any, what: str) -> Any:
        try:
            return cmd.execute(check_error=True)
        except Exception as exc:
            raise DriverError(f"OVSDB {self.db}: cannot {what}: {exc}") from exc

    def commit(self, what: str, *cmds: Any) -> None:
        try:
            with self.api.transaction(check_error=True) as txn:
                for cmd in cmds:
                    txn.add(cmd)
        except DriverError:
            raise
        except Exception as exc:
            raise DriverError(f"OVSDB {self.db}: cannot {what}: {exc}") from exc

    def bridge_exists(self, name: str) -> bool:
        return bool(self.read(self.api.br_exists(name), f"look up bridge {name}"))

    def bridge_row(self, name: str, *columns: str) -> dict[str, Any] | None:
        rows = self.read(
            self.api.db_list("Bridge", [name], columns=list(columns), if_exists=True),
            f"read bridge {name}",
        )
        return rows[0] if rows else None

    def records(self, bridge: str) -> dict[str, str]:
        row = self.bridge_row(bridge, "external_ids")
        return {} if row is None else rec.ours(row["external_ids"])

    def set_records(self, bridge: str, **items: Any) -> None:
        """Write (value) or forget (None) records `kind:name` on `bridge`."""
        put, drop = rec.changes(**items)
        cmds = []
        if put:
            cmds.append(self.api.db_set("Bridge", bridge, ("external_ids", put)))
        if drop:
            cmds.append(self.api.db_remove("Bridge", bridge, "external_ids", *drop))
        if cmds:
            self.commit("record state on " + bridge, *cmds)

    def interfaces(self, bridge: str) -> dict[str, dict[str, Any]]:
        """Interfaces of the ports of `bridge` (our ports have one interface of their name)."""
        if not self.bridge_exists(bridge):
            return {}
        names = set(self.read(self.api.list_ports(bridge), f"list ports of {bridge}"))
        rows = self.read(
            self.api.db_list("Interface", columns=["name", "type", "options", "ofport"]),
            "list interfaces",
        )
        return {r["name"]: r for r in rows if r["name"] in names}

    def vlans_by_net(self, br_int: str) -> dict[str, int]:
        """net_uuid -> local VLAN, from the access ports of br-int (the OVS agent's tags)."""
        if not self.bridge_exists(br_int):
            return {}
        names = set(self.read(self.api.list_ports(br_int), "list ports of br-int"))
        rows = self.read(
            self.api.db_list("Port", columns=["name", "tag", "other_config"]), "list ports"
        )
        out: dict[str, int] = {}
        for r in rows:
            net, tag = r["other_config"].get("net_uuid"), one(r["tag"])
            if r["name"] in names and net and tag is not None:
                out[net] = min(tag, out.get(net, tag))
        return out

    def port_cmds(
        self, bridge: str, name: str, cur: dict[str, Any] | None, kind: str, opts: dict
    ) -> list[Any]:
        """Commands that make port `name` of `bridge` an interface of type `kind` with exactly
        `opts` (none if it already is)."""
        if cur is None:
            return [self.api.add_port(bridge, name, may_exist=True, type=kind, options=opts)]
        if cur["type"] == kind and cur["options"] == opts:
            return []
        return [
            self.api.db_clear("Interface", name, "options"),
            self.api.db_set("Interface", name, ("type", kind), ("options", opts)),
        ]

    def ofport(self, name: str) -> int:
        """The OpenFlow port of interface `name` (vswitchd fills it in after the commit)."""
        deadline = time.monotonic() + self.timeout
        while True:
            rows = self.read(
                self.api.db_list("Interface", [name], columns=["ofport"], if_exists=True),
                f"read interface {name}",
            )
            port = one(rows[0]["ofport"]) if rows else None
            if port is not None and port > 0:
                return int(port)
            if time.monotonic() >= deadline:
                raise DriverError(f"OVS gave port {name} no OpenFlow number (see its log)")
            time.sleep(0.05)


def ofport_of(row: dict[str, Any] | None) -> int | None:
    """The OpenFlow port of an Interface row, None if it has none (yet)."""
    port = one(row["ofport"]) if row else None
    return int(port) if port is not None and port > 0 else None
