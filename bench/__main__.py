"""`python -m bench [--short]` from the repository root: see bench/run.py."""

import os
import sys
from pathlib import Path

# Measure this checkout's agent: its src/ first, for this process and the agents it starts.
_SRC = str(Path(__file__).resolve().parent.parent / "src")
sys.path.insert(0, _SRC)
os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (_SRC, os.environ.get("PYTHONPATH", "")) if p)

from bench.run import main  # noqa: E402

sys.exit(main())
