"""What the routers need, handed in at start-up (no globals)."""

from __future__ import annotations

from dataclasses import dataclass

from intercloud.config import Config
from intercloud.drivers.cloud.base import Cloud
from intercloud.drivers.dataplane.base import Dataplane
from intercloud.drivers.ipsec.base import Ipsec
from intercloud.reconciler import Reconciler
from intercloud.store import Store


@dataclass
class AppContext:
    cfg: Config
    store: Store
    cloud: Cloud
    dataplane: Dataplane
    reconciler: Reconciler
    ipsec: Ipsec | None = None
