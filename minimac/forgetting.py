"""Entry point of `python -m minimac.learn --benchmark [flags]`: the forgetting benchmark (lesson 12).

The benchmark itself lives in `benchmarks/forgetting.py` (it is a measurement, not library code); this module finds
it in a source checkout and runs its `main`. Flags are the benchmark's own: `--quick`, `--strategies`, `--domains`...
"""
from __future__ import annotations

import runpy
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "forgetting.py"


def main(argv: list[str] | None = None) -> int:
    if not SCRIPT.exists():
        raise FileNotFoundError(f"the forgetting benchmark is not at {SCRIPT}: it ships with the source checkout "
                                "(git clone), not with an installed wheel")
    namespace = runpy.run_path(str(SCRIPT), run_name="minimac_forgetting_benchmark")
    return int(namespace["main"](argv) or 0)
