"""minimac's speed work, switched on in one visible place: `minimac.fast.install()`. Lesson 07 (speed appendix).

The lessons' modules compute everything in plain tinygrad. `install()` makes the same numbers come faster:

- it puts the fast versions of the seams (minimac/ops.py) in place: `linear`, `low_rank_linear` and `embedding`
  (fast/linear.py: matmuls laid out for fast schedules, hand-written backward passes, optional mixed precision),
  `logsumexp` (fast/loss.py), `attention` (fast/attention.py), `swiglu_hidden` (fast/feedforward.py), `sum_all`
  (fast/grad_norm.py) and decoding's `decode_tokens` and `decode_batch` (fast/decode.py, fast/sampling.py);
- it changes how tinygrad schedules and runs CPU kernels: register tiles for matmuls (fast/cpu_tiles.py, with larger
  tensor-core tiles on NVIDIA GPUs from fast/gpu_tiles.py, and GPU schedules for a decoding step's sums from
  fast/gpu_sums.py where the device table asks), THREAD-split kernels on all cores (fast/cpu_threads.py),
  and a jitted CPU step replayed by one call into C (fast/cpu_graph.py). These are the only places where minimac
  changes tinygrad itself, and only after `install()`: `import minimac` changes nothing outside minimac.

What each device gets is one table, fast/devices.py. The command-line programs, the benchmarks and
`ContinualLearner` call `install()`; a notebook may call it or not. MINIMAC_PLAIN=1 keeps everything plain (and
MINIMAC_CPU_TILES=0, MINIMAC_GPU_TILES=0, MINIMAC_CPU_THREADS=0, MINIMAC_CPU_GRAPH=0 turn off one piece each).
The tinygrad patches copy a few private functions of tinygrad 0.14.0, so with any other version `install()` warns
once and keeps the plain path.

    >>> import minimac.fast
    >>> minimac.fast.install()       # doctest: +SKIP
    ('attention', 'cpu_graph', 'cpu_threads', 'cpu_tiles', 'embedding', 'linear', ...)
    >>> minimac.fast.installed()     # doctest: +SKIP
"""
from __future__ import annotations

import importlib.metadata
import os
import warnings

TESTED_TINYGRAD = "0.14.0"
_patches: dict[str, object] = {}   # name -> the module whose install() changed tinygrad
_warned = False


def tinygrad_version() -> str:
    """The installed tinygrad's version (tinygrad has no __version__)."""
    try:
        return importlib.metadata.version("tinygrad")
    except importlib.metadata.PackageNotFoundError:   # a source checkout on sys.path
        return "unknown"


def supported() -> bool:
    """True for the tinygrad version the fast path was written against; warns once (and is False) otherwise."""
    global _warned
    version = tinygrad_version()
    if version == TESTED_TINYGRAD:
        return True
    if not _warned:
        warnings.warn(f"minimac.fast was written for tinygrad {TESTED_TINYGRAD}, this is {version}: "
                      "minimac runs its plain (readable) path, which is slower but computes the same", stacklevel=3)
        _warned = True
    return False


def install() -> tuple[str, ...]:
    """Switch the fast path on (idempotent); returns `installed()`. Does nothing when MINIMAC_PLAIN=1 or with a
    tinygrad other than the tested one."""
    if os.environ.get("MINIMAC_PLAIN", "0") == "1" or not supported():
        return installed()
    from minimac import attention, decoding, feedforward, ops
    from minimac.fast import attention as fast_attention
    from minimac.fast import cpu_graph, cpu_threads, cpu_tiles, decode, grad_norm, linear, loss
    from minimac.fast import feedforward as fast_feedforward

    assert attention.attention and feedforward.swiglu_hidden and decoding.decode_tokens  # their seams are registered
    ops.replace(linear=linear.linear, low_rank_linear=linear.low_rank_linear, embedding=linear.embedding,
                logsumexp=loss.logsumexp, sum_all=grad_norm.sum_all, attention=fast_attention.attention,
                swiglu_hidden=fast_feedforward.swiglu_hidden, decode_tokens=decode.decode_tokens,
                decode_batch=decode.decode_batch)
    ops.flags["matmul_dtype"] = linear.matmul_dtype()
    for name, module in (("cpu_tiles", cpu_tiles), ("cpu_threads", cpu_threads), ("cpu_graph", cpu_graph)):
        if module.install():
            _patches[name] = module
    return installed()


def uninstall() -> None:
    """Back to the plain path and tinygrad's own behaviour (kernels compiled before keep their schedules: tinygrad
    caches programs per process)."""
    from minimac import ops
    for module in reversed(list(_patches.values())):
        module.uninstall()
    _patches.clear()
    ops.restore()
    ops.flags.clear()


def installed() -> tuple[str, ...]:
    """What is switched on now: the replaced seams and the tinygrad patches, sorted; () when all is plain."""
    from minimac import ops
    return tuple(sorted((*ops.replaced(), *_patches)))
