"""Execute the lesson notebooks in fast mode and store their outputs, so students can read them without running them.

    python scripts/run_notebooks.py                          # every notebooks/*.ipynb, in place
    python scripts/run_notebooks.py notebooks/03_rope.ipynb  # some of them
    python scripts/run_notebooks.py --check                  # execute nothing: which committed outputs are stale?

Each notebook runs top to bottom in a fresh `python3` kernel, from notebooks/, with `MINIMAC_FAST=1` (smaller sizes
and fewer steps; the same mode the tests use). The executed notebook replaces the file only if no cell raised, and
its metadata gets `minimac.code_sha256`, a hash of its code cells' source, with the time it took. Plots are
stored as palette PNGs, and notebooks/matplotlibrc keeps them at a modest resolution. A test
(tests/test_notebooks.py) recomputes the hash: a code cell edited after the last run makes the committed outputs
stale, and the test says to run this script again. Markdown edits do not. Leaves out: executing in full mode
(open the notebook in Jupyter for that) and comparing outputs, which change from run to run (timings, tokens/s).
"""
from __future__ import annotations

import argparse
import base64
import hashlib
import io
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
META = "minimac"                   # our key in the notebook's metadata
MAX_BYTES = 1_500_000              # a notebook with outputs larger than this is refused: keep the repository light


def code_hash(nb) -> str:
    """sha256 of the code cells' sources, in order (whitespace at either end of a cell ignored)."""
    h = hashlib.sha256()
    for cell in nb.cells:
        if cell.cell_type == "code":
            h.update(cell.source.strip().encode("utf-8"))
            h.update(b"\0")
    return h.hexdigest()


def stale(nb) -> str | None:
    """Why the outputs stored in `nb` do not belong to its code, or None when they do."""
    meta = nb.metadata.get(META, {})
    if meta.get("code_sha256") != code_hash(nb):
        return "its code cells changed since it was last executed" if meta else "it was never executed by this script"
    missing = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and c.get("execution_count") is None]
    if missing:
        return f"code cells {missing} have no stored run"
    errors = [i for i, c in enumerate(nb.cells) if c.cell_type == "code"
              for o in c.get("outputs", []) if o.get("output_type") == "error"]
    if errors:
        return f"code cells {sorted(set(errors))} stored an error"
    return None


def shrink_png(b64: str) -> str:
    """A plot's PNG re-encoded with a palette of 256 colours (about 3-4x smaller, no visible change); as it was if
    Pillow (which matplotlib installs) is missing or the result is not smaller."""
    try:
        from PIL import Image
    except ImportError:
        return b64
    raw = base64.b64decode(b64)
    image = Image.open(io.BytesIO(raw)).convert("RGB")
    out = io.BytesIO()
    palette = image.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    palette.save(out, "PNG", optimize=True)
    small = out.getvalue()
    return base64.b64encode(small).decode("ascii") if len(small) < len(raw) else b64


def execute(path: Path, timeout: int = 900):
    """Run `path` in fast mode; return (the executed notebook, seconds). Raises nbclient's error if a cell fails."""
    import nbclient
    import nbformat
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
            cell.metadata.pop("execution", None)
    client = nbclient.NotebookClient(nb, timeout=timeout, kernel_name="python3", record_timing=False,
                                     resources={"metadata": {"path": str(path.parent)}})
    start = time.perf_counter()
    client.execute(env={**os.environ, "MINIMAC_FAST": "1"})   # the kernel's environment; ours is left alone
    seconds = time.perf_counter() - start
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if "image/png" in out.get("data", {}):
                out["data"]["image/png"] = shrink_png(out["data"]["image/png"])
    return nb, seconds


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("paths", nargs="*", type=Path, help="notebooks to run (default: every notebooks/*.ipynb)")
    p.add_argument("--check", action="store_true", help="execute nothing; list notebooks whose outputs are stale")
    p.add_argument("--timeout", type=int, default=900, help="seconds one cell may take (default 900)")
    args = p.parse_args(argv)
    import nbformat
    paths = args.paths or sorted(NOTEBOOKS.glob("*.ipynb"))
    if missing := [str(x) for x in paths if not x.is_file()]:
        p.error(f"no such notebook: {', '.join(missing)}")
    if args.check:
        bad = {x: why for x in paths if (why := stale(nbformat.read(x, as_version=4)))}
        for x, why in bad.items():
            print(f"{x.name}: stale, {why}")
        stale_paths = " ".join(os.path.relpath(x) for x in bad)
        print("all up to date" if not bad else f"run: python scripts/run_notebooks.py {stale_paths}")
        return 1 if bad else 0
    failed = []
    for path in paths:
        print(f"{path.name} ...", end=" ", flush=True)
        try:
            nb, seconds = execute(path, args.timeout)
        except Exception as e:  # noqa: BLE001 (nbclient's cell errors and timeouts: report, leave the file)
            failed.append(path.name)
            print(f"FAILED, file left unchanged:\n{str(e)[-3000:]}")
            continue
        nb.metadata[META] = {"code_sha256": code_hash(nb), "fast_mode": True, "seconds": round(seconds, 1),
                             "cpu_count": os.cpu_count()}
        text = nbformat.writes(nb)
        text += "" if text.endswith("\n") else "\n"
        if len(text.encode()) > MAX_BYTES:
            failed.append(path.name)
            print(f"outputs too large ({len(text.encode()):,} bytes > {MAX_BYTES:,}): shrink its prints or plots")
            continue
        path.write_text(text, encoding="utf-8")
        print(f"{seconds:.0f} s, {len(text.encode()) / 1e3:.0f} kB")
    if failed:
        print("failed:", ", ".join(failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
