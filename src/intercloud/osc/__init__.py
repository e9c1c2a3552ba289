"""The `openstack intercloud ...` commands: a python-openstackclient plugin (osc-lib, entry
point `openstack.cli.extension`), authenticated by the CLI's own Keystone session; the agent is
the endpoint of service type `intercloud` in Keystone's catalog.

It runs inside the `openstack` CLI's environment, not the agent's: it imports nothing of
intercloud outside this package, only osc-lib, cliff and keystoneauth1 (which the CLI has).

This module is what OpenStackClient asks of a plugin (API_NAME, API_VERSIONS, make_client,
build_option_parser); client.py talks to the agent, commands.py holds the commands."""

from __future__ import annotations

import argparse
from typing import Any

API_NAME = "intercloud"
API_VERSION_OPTION = "os_intercloud_api_version"
DEFAULT_API_VERSION = "1"
API_VERSIONS = {"1": "intercloud.osc.client.Client"}
SERVICE_TYPE = "intercloud"


def make_client(instance: Any) -> Any:
    """The agent's client over the CLI's session, at the catalog's `intercloud` endpoint (or
    --os-intercloud-url)."""
    from intercloud.osc.client import Client

    options = getattr(getattr(instance, "_cli_options", None), "config", None) or {}
    url = options.get("intercloud_url") or instance.get_endpoint_for_service_type(
        SERVICE_TYPE, region_name=instance.region_name, interface=instance.interface
    )
    if not url:
        from osc_lib import exceptions

        raise exceptions.CommandError(
            "intercloud: no endpoint of service type 'intercloud' in Keystone's catalog "
            "(or give --os-intercloud-url)"
        )
    return Client(instance.session, url)


def build_option_parser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument(
        "--os-intercloud-api-version",
        metavar="<version>",
        default=DEFAULT_API_VERSION,
        help=f"intercloud API version (default: {DEFAULT_API_VERSION})",
    )
    parser.add_argument(
        "--os-intercloud-url",
        metavar="<url>",
        default=None,
        help="the intercloud agent's URL (default: Keystone's catalog, service type intercloud)",
    )
    return parser
