"""The agent in its cloud's Keystone catalog, as service type `intercloud`: where the
`openstack intercloud ...` commands (src/intercloud/osc) find it, as every OpenStack client
finds a service."""

from __future__ import annotations

from intercloud.lab.openstack.services import REGION, OpenStackServices

SERVICE_TYPE = "intercloud"


def register_agent(svc: OpenStackServices, url: str) -> None:
    """Service `intercloud` with public/internal/admin endpoints at `url` (idempotent)."""
    with svc.api() as api:
        found = api.keystone("GET", f"/services?type={SERVICE_TYPE}")["services"]
        if found:
            service = found[0]
        else:
            body = {"service": {"name": "intercloud", "type": SERVICE_TYPE, "enabled": True}}
            service = api.keystone("POST", "/services", body=body)["service"]
        if api.keystone("GET", f"/endpoints?service_id={service['id']}")["endpoints"]:
            return
        for iface in ("public", "internal", "admin"):
            endpoint = {
                "service_id": service["id"],
                "interface": iface,
                "url": url,
                "region_id": REGION,
            }
            api.keystone("POST", "/endpoints", body={"endpoint": endpoint})
