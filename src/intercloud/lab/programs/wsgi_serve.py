"""Serve an OpenStack service's WSGI application on 127.0.0.1 (run inside a cloud's namespace
by the OpenStack virtualenv's python: lab/openstack/services.py).

    python -I wsgi_serve.py PORT MODULE      # MODULE.application, e.g. keystone.wsgi.api
"""

from __future__ import annotations

import importlib
import sys
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def main() -> None:
    port, module = int(sys.argv[1]), sys.argv[2]
    sys.argv = [sys.argv[0]]  # Neutron parses argv as its own options
    app = importlib.import_module(module).application
    server = make_server("127.0.0.1", port, app, server_class=WSGIServer, handler_class=_Quiet)
    server.serve_forever()


if __name__ == "__main__":
    main()
