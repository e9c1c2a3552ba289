"""Create Neutron's full schema in an empty SQLite database (run once per virtualenv by its
python: lab/openstack/venvs.py; Neutron's migrations do not run on SQLite). The database's
path comes on stdin."""

from __future__ import annotations

import sys


def main() -> None:
    sys.argv = [sys.argv[0]]  # Neutron parses argv as its own options
    from neutron.db.migration.models import head  # the Neutron virtualenv's
    from sqlalchemy import create_engine

    engine = create_engine("sqlite:///" + sys.stdin.read().strip())
    head.get_metadata().create_all(engine)


if __name__ == "__main__":
    main()
