"""Cloud drivers: where projects, tokens and expandable networks come from."""

from __future__ import annotations

from intercloud.config import Config
from intercloud.drivers.cloud.base import Cloud
from intercloud.errors import Invalid

DRIVERS = ("standalone", "openstack")


def load(cfg: Config) -> Cloud:
    if cfg.cloud.driver == "standalone":
        from intercloud.drivers.cloud.standalone import StandaloneCloud

        return StandaloneCloud(cfg)
    if cfg.cloud.driver == "openstack":
        from intercloud.drivers.cloud.openstack import OpenStackCloud

        return OpenStackCloud(cfg.cloud)
    raise Invalid(
        f"cloud.driver: unknown driver {cfg.cloud.driver!r} (valid: {', '.join(DRIVERS)})",
        field="cloud.driver",
    )
