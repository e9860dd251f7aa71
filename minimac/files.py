"""Writing files so that a crash never leaves half of one, and safetensors on the host. Lesson 06.

Every file minimac writes (checkpoints, adapters, replay buffers, tokenizers, benchmark results) goes through
`atomic_write`: a temp file in the same folder, then `os.replace`, which readers see as the old file or the new one,
never half of one. A folder of files (a learner's checkpoint, a cached base) is written the same way, as a temp
folder swapped into place (`replace_folder`).

safetensors (Hugging Face's format) is written and read here with numpy, on the host:

    8-byte little-endian header length | JSON header {name: {dtype, shape, data_offsets}, "__metadata__": {...}} | bytes

Why not tinygrad's `safe_save` / `safe_load`: they assemble or read the file with small kernels on the CPU device,
which needs a C compiler (clang) even when the model lives on CUDA or METAL, and a corrupt file raises whatever
json/struct error comes first; here a bad file gets an error that names it and says what is wrong.

    >>> write_safetensors("w.safetensors", {"a": np.ones((2, 3), np.float32)}, {"note": "hi"})   # doctest: +SKIP
    >>> read_safetensors("w.safetensors")["a"].shape                                             # doctest: +SKIP
    (2, 3)
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from tinygrad import Tensor

_NP_DTYPES = {"F32": np.float32, "F16": np.float16, "I32": np.int32, "I64": np.int64, "U8": np.uint8,
              "U32": np.uint32}


def atomic_write(path: str | os.PathLike, write: Callable[[str], Any] | str | bytes) -> None:
    """Write `path` whole or not at all: `write(temp_path)` (or the given text / bytes) into a temp file beside it,
    then rename it over `path`. The temp file is removed if anything fails, Ctrl-C included. The file is readable by
    all (0644), as a plain open() would make it: mkstemp's temp files are the owner's only."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        if isinstance(write, str):
            Path(tmp).write_bytes(write.encode("utf-8"))   # UTF-8, "\n" kept as is on every OS
        elif isinstance(write, bytes):
            Path(tmp).write_bytes(write)
        else:
            write(tmp)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _remove_orphans(final: Path) -> None:
    """Remove temp folders that an earlier replace_folder of `final` left when its process was killed."""
    for tmp in final.parent.glob(f".{final.name}.tmp-*"):
        pid = tmp.name[len(final.name) + 6:].split("-")[0]
        if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            shutil.rmtree(tmp, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True   # it exists but belongs to another user
    return True


def replace_folder(fill: Callable[[Path], Any], final: str | os.PathLike, keep_existing: bool = False) -> bool:
    """Make folder `final` whole or not at all: `fill(temp_folder)` writes a temp folder beside it, which then takes
    its place. An existing `final` is moved to `final.previous` for the moment of the swap (so an interrupted swap
    leaves the old folder there), then removed; with `keep_existing`, an existing `final` wins and the new one is
    dropped (another process built the same cache entry meanwhile). Returns whether the new folder was put in place.
    The temp folder is named .FINAL.tmp-PID-*, so temp folders of a killed process (its PID gone) are removed here.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    _remove_orphans(final)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-{os.getpid()}-", dir=final.parent))
    try:
        fill(tmp)
        if final.exists() and keep_existing:
            shutil.rmtree(tmp)
            return False
        previous = final.with_name(final.name + ".previous")
        if final.exists():
            if previous.exists():
                shutil.rmtree(previous)
            os.replace(final, previous)
        os.replace(tmp, final)
        shutil.rmtree(previous, ignore_errors=True)
        return True
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_safetensors(path: str | os.PathLike, tensors: dict[str, Any], metadata: dict[str, str] | None = None) -> None:
    """Write Tensors or arrays as a safetensors file, on the host with numpy.

    Why not tinygrad's `safe_save`: it assembles the file with small kernels on the CPU device, which needs a C
    compiler (clang) even when the model lives on CUDA or METAL; reading each tensor back to numpy needs none.
    Layout: 8-byte little-endian header length, a JSON header (name -> dtype, shape, byte offsets), the raw bytes.
    """
    codes = {np.dtype(v): k for k, v in _NP_DTYPES.items()}
    arrays = {k: np.ascontiguousarray(v.numpy() if isinstance(v, Tensor) else v) for k, v in tensors.items()}
    header: dict[str, Any] = {"__metadata__": metadata} if metadata else {}
    offset = 0
    for k, a in arrays.items():
        if a.dtype not in codes:
            raise TypeError(f"cannot save {k!r}: dtype {a.dtype} is not one of {sorted(map(str, codes))}")
        header[k] = {"dtype": codes[a.dtype], "shape": list(a.shape), "data_offsets": [offset, offset + a.nbytes]}
        offset += a.nbytes
    head = json.dumps(header, separators=(",", ":")).encode("utf-8")
    head += b" " * (-len(head) % 8)
    with open(path, "wb") as f:
        f.write(len(head).to_bytes(8, "little"))
        f.write(head)
        for a in arrays.values():
            f.write(a.tobytes())


def read_safetensors(path: str | os.PathLike, with_metadata: bool = False) -> Any:
    """Read a safetensors file into numpy arrays on the host, validating its header against the file size; with
    `with_metadata`, (arrays, the header's "__metadata__" dict) instead."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file '{path}' is missing")
    raw = path.read_bytes()

    def corrupt(why: str) -> ValueError:
        return ValueError(f"weights file '{path}' is truncated or corrupt: {why}")

    if len(raw) < 8:
        raise corrupt(f"only {len(raw)} bytes")
    n = int.from_bytes(raw[:8], "little")
    if 8 + n > len(raw):
        raise corrupt(f"header claims {n} bytes but the file has {len(raw)}")
    try:
        header = json.loads(raw[8:8 + n].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise corrupt(f"unreadable header ({e})") from None
    if not isinstance(header, dict):
        raise corrupt("the header is not a JSON object")
    data, out = memoryview(raw)[8 + n:], {}
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        try:
            dtype, shape, (start, end) = np.dtype(_NP_DTYPES[meta["dtype"]]), list(meta["shape"]), meta["data_offsets"]
        except (KeyError, TypeError, ValueError):
            raise corrupt(f"bad header entry for '{name}': {meta}") from None
        if end - start != int(np.prod(shape)) * dtype.itemsize or not 0 <= start <= end:
            raise corrupt(f"'{name}' has offsets {start}..{end} that do not fit shape {shape} ({meta['dtype']})")
        if end > len(data):
            raise corrupt(f"'{name}' ends at byte {end} of the data but there are only {len(data)}")
        out[name] = np.frombuffer(data[start:end], dtype=dtype).reshape(shape)
    return (out, header.get("__metadata__") or {}) if with_metadata else out
