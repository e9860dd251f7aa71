"""The few operations that minimac's speed work replaces, written plainly: the one seam between the lessons and
minimac/fast/. Lessons 02-07.

A lesson module says what it computes in plain tinygrad, and marks the handful of functions that a faster version
may stand in for with `@seam`. Nothing is replaced until `minimac.fast.install()` says so (the command-line
programs, the benchmarks and the learner call it; a notebook may or may not). A replacement computes the same
numbers with a hand-written backward pass or a layout that tinygrad schedules faster; tests/test_speed_paths.py
checks each one against the plain version here.

    @seam
    def linear(x, weight):                     # what a student reads, and what runs without minimac.fast
        return x @ weight.transpose()
    replace(linear=faster_linear)              # what minimac.fast.install() does; replaced() -> ("linear",)

The seams defined here: `linear` and `low_rank_linear` (a bias-free nn.Linear; LoRA's skinny A and B), `embedding`,
`logsumexp` (inside `cross_entropy`) and `sum_all` (inside `clip_by_global_norm` and the EWC penalty). attention.py
(`attention`) and feedforward.py (`swiglu_hidden`) define their own. `flags` holds the settings of the fast path
that change a captured graph (the matmul dtype), so that minimac.jit_cache recaptures when they change.

Leaves out: the replacements themselves (minimac/fast/), and any change to tinygrad's own behaviour.
"""
from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator

from tinygrad import Tensor, dtypes, nn

SEAMS: dict[str, Callable] = {}           # name -> the plain function
_REPLACEMENTS: dict[str, Callable] = {}   # name -> what runs instead, once minimac.fast is installed
flags: dict[str, str] = {}                # settings of the fast path that change a captured graph


def seam(fn: Callable) -> Callable:
    """Mark `fn` as replaceable by `replace(name=...)`; calls go to the replacement once there is one."""
    name = fn.__name__
    if name in SEAMS:
        raise ValueError(f"two seams named {name!r}")
    SEAMS[name] = fn

    @functools.wraps(fn)
    def call(*args, **kwargs):
        return _REPLACEMENTS.get(name, fn)(*args, **kwargs)
    call.plain = fn  # the readable version, for tests that compare the two
    return call


def replace(**replacements: Callable) -> None:
    """Run `replacements[name]` instead of the plain seam `name` from now on (minimac.fast.install calls this)."""
    unknown = sorted(set(replacements) - set(SEAMS))
    if unknown:
        raise ValueError(f"no seam named {unknown}; the seams are {sorted(SEAMS)}")
    _REPLACEMENTS.update(replacements)


def restore(*names: str) -> None:
    """Back to the plain versions of `names` (all seams if none given)."""
    for name in names or list(_REPLACEMENTS):
        _REPLACEMENTS.pop(name, None)


@contextlib.contextmanager
def plain(*names: str) -> Iterator[None]:
    """Run the plain versions of `names` (every seam if none given) inside the block, then put the replacements
    back: `with ops.plain(): model(x)` is the readable path, whatever is installed."""
    saved = dict(_REPLACEMENTS)
    restore(*names)
    try:
        yield
    finally:
        _REPLACEMENTS.clear()
        _REPLACEMENTS.update(saved)


def replaced() -> tuple[str, ...]:
    """The seams that run a replacement now, sorted."""
    return tuple(sorted(_REPLACEMENTS))


def graph_key() -> tuple:
    """What a captured graph depends on here: which seams are replaced (and by what) and the fast path's flags."""
    return (tuple(sorted((k, f"{f.__module__}.{f.__qualname__}") for k, f in _REPLACEMENTS.items())),
            tuple(sorted(flags.items())))


# ---- matmuls ------------------------------------------------------------------------------------------------------
@seam
def linear(x: Tensor, weight: Tensor) -> Tensor:
    """x (..., in) @ weight^T with weight (out, in), as nn.Linear stores it: (..., out)."""
    return x @ weight.transpose()


@seam
def low_rank_linear(x: Tensor, weight: Tensor) -> Tensor:
    """The same as `linear`, for LoRA's skinny A (r, in) and B (out, r); a seam of its own because the fast path lays
    skinny matmuls out differently on each device."""
    return x @ weight.transpose()


class Linear(nn.Linear):
    """tinygrad's nn.Linear (same weight (out, in), still an nn.Linear for LoRA and get_state_dict), whose bias-free
    matmul goes through the `linear` seam."""

    def __call__(self, x: Tensor) -> Tensor:
        return super().__call__(x) if self.bias is not None else linear(x, self.weight)


@seam
def embedding(weight: Tensor, idx: Tensor) -> Tensor:
    """weight[idx]: rows of a (V, d) table picked by int ids (...,) -> (..., d)."""
    return weight[idx]


# ---- the loss -----------------------------------------------------------------------------------------------------
@seam
def logsumexp(x: Tensor) -> Tensor:
    """log(sum(exp(x))) over the last axis, the max subtracted first so exp never overflows: (..., V) -> (...).

    >>> round(logsumexp(Tensor([[0.0, 0.0, 0.0, 0.0]])).item(), 4)  # log 4
    1.3863
    """
    return x.logsumexp(-1)


def cross_entropy(logits: Tensor, targets: Tensor, weights: Tensor | None = None, ignore_index: int = -1) -> Tensor:
    """-log p(target) per position, averaged over the targets that are not `ignore_index`, or, with `weights`
    (B, T), summed with those weights (the learner's mix of new and replayed rows; weights 1/n on n targets give the
    mean). logits (B, T, V), targets (B, T) int -> a scalar. Uniform logits give log(V): for V = 4, 1.386.

    The picked logit comes from `gather`, which tinygrad fuses into a compare-and-select inside the reduction, so no
    float one-hot of (B, T, V) is written to memory. tinygrad's own `sparse_categorical_crossentropy` with
    ignore_index=-1 keeps the ignored positions in the denominator, hence this function.
    """
    if logits.ndim != targets.ndim + 1 or logits.shape[:-1] != targets.shape:
        raise ValueError(f"logits {logits.shape} must be targets {targets.shape} plus a vocabulary axis")
    valid = targets != ignore_index                                      # (B, T) bool
    safe = valid.where(targets, 0)                                       # a legal index where ignored
    picked = logits.gather(-1, safe.unsqueeze(-1)).squeeze(-1)           # (B, T)
    nll = logsumexp(logits.float()) - picked.float()                     # (B, T)
    if weights is not None:
        return (nll * weights).sum()
    return (nll * valid).sum() / valid.sum().maximum(1).cast(dtypes.float32)


# ---- gradient clipping --------------------------------------------------------------------------------------------
@seam
def sum_all(tensors: list[Tensor]) -> Tensor:
    """The sum of every entry of every tensor, a scalar: for a gradient norm or the EWC penalty over many weights.

    >>> sum_all([Tensor([1.0, 2.0]), Tensor([[3.0], [4.0]])]).item()
    10.0
    """
    if not tensors:
        raise ValueError("sum_all needs at least one tensor")
    return sum(t.sum() for t in tensors)


def clip_by_global_norm(grads: list[Tensor], max_norm: float) -> tuple[list[Tensor], Tensor]:
    """Scale every gradient by min(1, max_norm / ||g||), ||g|| the norm of all of them as one vector; max_norm <= 0
    clips nothing. Stays on the device (no `.item()`), so it lives inside a jitted step. -> (clipped, norm before).

        ||g|| = sqrt(sum over every gradient tensor of its squared entries)
    """
    # contiguous(): the norm is one small kernel of its own. Without it tinygrad fuses the whole global reduction
    # into every reader, and each parameter's update re-reads every gradient (90% of a LoRA step on an H100).
    norm = sum_all([g.float().square() for g in grads]).sqrt().contiguous()
    if max_norm <= 0:
        return grads, norm
    scale = (max_norm / (norm + 1e-6)).minimum(1.0).contiguous()
    return [g * scale.cast(g.dtype) for g in grads], norm
