"""Model checkpoints: `model.safetensors` + `config.json` in one directory. Lesson 06.

    model.save("ckpt/base")                 # or minimac.checkpoint.save(model, "ckpt/base")
    model = Transformer.load("ckpt/base")   # the same logits, bit for bit

- `model.safetensors`: every weight under its seed name (`layers.0.attention.q_proj.weight`, float32). With tied
  embeddings only `token_embedding.weight` is stored (the seed stored the same matrix twice).
- `config.json`: {"format_version": 1, "model": ModelConfig.to_dict()}.

Writes are atomic: each file goes to a temp file in the same directory, then `os.replace` puts it in place, so a
crash never leaves a half-written file under the real name. The directory may hold other files (a tokenizer in
`tokenizer/`, LoRA adapters, a learner's state); they are left alone.

Loading checks everything before touching a model: a missing directory or file, a truncated or corrupt safetensors
file, an unknown format version, or weights that do not fit the config (a missing key, a shape mismatch) each raise
an error that names the file and the problem. The seed's `from_checkpoint` (documented but missing) is `load`.

Not covered: optimizer state, sharded or half-precision checkpoints, loading the seed's PyTorch pickles.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from tinygrad import Tensor, dtypes

FORMAT_VERSION = 1
WEIGHTS_NAME, CONFIG_NAME = "model.safetensors", "config.json"
_NP_DTYPES = {"F32": np.float32, "F16": np.float16, "I32": np.int32, "I64": np.int64, "U8": np.uint8,
              "U32": np.uint32}


def _atomic_write(path: Path, write: Any) -> None:
    """Call write(temp_path) on a temp file next to `path`, then rename it over `path`."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
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


def save(model: Any, directory: str | os.PathLike) -> Path:
    """Write `model`'s weights and config into `directory` (created if needed); return the directory."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    state = dict(model.state_dict())
    if model.config.tie_embeddings:
        state.pop("lm_head.weight", None)  # the same tensor as token_embedding.weight
    state = {k: v.cast(dtypes.float32).contiguous() for k, v in state.items()}
    Tensor.realize(*state.values())
    config = {"format_version": FORMAT_VERSION, "model": model.config.to_dict()}
    _atomic_write(d / WEIGHTS_NAME, lambda tmp: write_safetensors(tmp, state))
    _atomic_write(d / CONFIG_NAME, lambda tmp: Path(tmp).write_text(json.dumps(config, indent=2) + "\n"))
    return d


def read_safetensors(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read a safetensors file into numpy arrays on the host, validating its header against the file size."""
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
    return out


def read_config(directory: str | os.PathLike) -> Any:
    """The ModelConfig stored in `directory`/config.json."""
    from minimac.model import ModelConfig

    path = Path(directory) / CONFIG_NAME
    if not path.is_file():
        raise FileNotFoundError(f"config file '{path}' is missing")
    try:
        blob = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"config file '{path}' is not valid JSON: {e}") from None
    if not isinstance(blob, dict) or "model" not in blob:
        raise ValueError(f"config file '{path}' has no \"model\" section (is it a model checkpoint?)")
    if blob.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"config file '{path}' has format_version {blob.get('format_version')!r}; "
                         f"this minimac reads version {FORMAT_VERSION}")
    try:
        return ModelConfig.from_dict(blob["model"])
    except (TypeError, ValueError) as e:
        raise ValueError(f"config file '{path}': {e}") from None


def load(directory: str | os.PathLike) -> Any:
    """A Transformer rebuilt from `directory` (config.json + model.safetensors)."""
    from minimac.model import Transformer

    d = Path(directory)
    if not d.is_dir():
        raise FileNotFoundError(f"checkpoint directory '{d}' does not exist")
    config = read_config(d)
    weights = read_safetensors(d / WEIGHTS_NAME)
    model = Transformer(config)
    own = model.state_dict()
    expected = set(own) - ({"lm_head.weight"} if config.tie_embeddings else set())
    where = f"weights file '{d / WEIGHTS_NAME}'"
    if missing := sorted(expected - set(weights)):
        raise ValueError(f"{where} does not match config.json: missing {', '.join(missing)}")
    if unexpected := sorted(set(weights) - set(own)):
        raise ValueError(f"{where} does not match config.json: unexpected {', '.join(unexpected)}")
    for name in sorted(expected):
        if tuple(weights[name].shape) != tuple(own[name].shape):
            raise ValueError(f"{where} does not match config.json: {name} has shape {tuple(weights[name].shape)}, "
                             f"the config needs {tuple(own[name].shape)}")
    model.load_state_dict({k: Tensor(np.ascontiguousarray(weights[k], dtype=np.float32), dtype=dtypes.float32)
                           for k in expected})
    return model
