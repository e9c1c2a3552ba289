"""The packages of src/intercloud import one way only: down this table (or within themselves).
An import inside a function counts as much as one at the top; `if TYPE_CHECKING:` ones too."""

from __future__ import annotations

import ast
from pathlib import Path

import intercloud

SRC = Path(intercloud.__file__).parent

# rank: a module may import modules of a lower rank, or of its own package.
RANK = {
    "errors": 0,
    "osc": 0,  # the `openstack` CLI plugin runs in the CLI's environment: it imports none of us
    "domain": 1,
    "tls": 1,
    "metrics": 1,  # prometheus_client only
    "heap": 0,  # ctypes and gc only
    "store": 2,
    "federation": 2,
    "drivers": 2,
    "api_client": 2,
    "config": 3,
    "service": 4,
    "reconciler": 5,  # like the API, a caller of the use cases (on time rather than requests)
    "api": 5,  # reaches the reconciler through a protocol (api/context.py), never its module
    "agent": 6,  # wiring: config -> store, drivers, reconciler, API
    "cli": 7,
    "lab": 7,
    "__main__": 8,
}
# the CLI loads the lab's command group on use (`intercloud lab ...`), the lab runs the CLI's
# commands against its agents: two tools at the top, each may call the other
ALSO = {("cli", "lab"), ("lab", "cli")}
# below its rank but still not its business: the API and the use cases know no driver and no
# reconciler module (the API calls the reconciler through a protocol; drivers come as protocols)
NEVER = {
    ("api", "drivers"),
    ("api", "reconciler"),
    ("service", "drivers"),
    ("service", "reconciler"),
}


def _package(module: str, root: Path = SRC) -> str:
    """The top package or module of `intercloud.x.y` ("" for a name of the root package, such
    as `intercloud.__version__`)."""
    top = module.split(".")[1]
    return top if (root / top).is_dir() or (root / f"{top}.py").is_file() else ""


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "intercloud":
                found += [(node.lineno, f"intercloud.{a.name}") for a in node.names]
            else:
                found.append((node.lineno, node.module))
    return [(line, name) for line, name in found if name.startswith("intercloud.")]


def _violations(root: Path = SRC) -> list[str]:
    bad = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root)
        here = rel.parts[0].removesuffix(".py")
        if here == "__init__":
            continue
        for line, name in _imports(path):
            there = _package(name, root)
            if there in (here, "") or (here, there) in ALSO:
                continue
            if (here, there) in NEVER or RANK.get(there, 99) >= RANK.get(here, -1):
                bad.append(f"{rel}:{line}: {here} imports {name}")
    return bad


def test_every_package_has_a_rank():
    packages = {
        p.name.removesuffix(".py") for p in SRC.iterdir() if p.suffix == ".py" or p.is_dir()
    }
    packages -= {"__init__", "__pycache__"}
    assert packages <= set(RANK), sorted(packages - set(RANK))


def test_no_import_goes_up():
    assert _violations() == []


def test_an_import_going_up_is_found(tmp_path):
    for rel, body in {
        "config.py": "",
        "drivers/ipsec/noop.py": "from intercloud.drivers import registry\n",
        "drivers/cloud/base.py": "def f():\n    from intercloud.config import Config\n",
        "api/context.py": "from intercloud import reconciler\n",
        "reconciler/__init__.py": "",
        "lab/cli.py": "import intercloud.cli.app\n",
        "cli/app.py": "from intercloud import __version__\n",
    }.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(body)
    assert _violations(tmp_path) == [
        "api/context.py:1: api imports intercloud.reconciler",
        "drivers/cloud/base.py:2: drivers imports intercloud.config",
    ]
