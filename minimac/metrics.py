"""Measuring a continual learner: bits per byte of a model on a text, and forgetting / transfer from an R matrix. Lessons 07, 12.

Covers: `evaluate` (loss, perplexity, bits per token, bits per byte in fixed-shape batches), `bits_per_byte_of_text`,
and continual-learning arithmetic on R[stage][set], where lower is better (bits per byte): `forgetting`,
`relative_forgetting`, `average_forgetting`, `max_forgetting`, `backward_transfer`, `forward_transfer`, `gain`,
the `RMatrix` record, and the seed's two-snapshot `compute_forgetting_rate` with its sign fixed for losses.
Leaves out: accuracy metrics, generation-quality scores, sliding-window evaluation.

Layout of R (as in shared/data/README.md): row i = after training stage i (stage 0 = the base model, then one stage
per new domain); column j < number of stages = the test set of the domain trained at stage j (column 0 = base);
further columns are probes never trained on. The worked example used in the docstrings below:

    R = [[1.0, 3.0, 4.0],     stage 0 (base model)   sets: base, law, med
         [1.2, 2.0, 3.0],     stage 1 (trained law)
         [1.5, 2.5, 1.5]]     stage 2 (trained med)

Avalanche scores are higher-is-better and define forgetting = best earlier score - last score. For a loss the best is
the *minimum*, so here forgetting = last - min: again >= 0, and > 0 means the model got worse (forgot).
"""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from tinygrad import Context, Tensor, TinyJit, dtypes

from minimac.jit_cache import cached_jit

LN2 = math.log(2.0)


def _matrix(R) -> np.ndarray:
    R = np.asarray(R, dtype=np.float64)
    if R.ndim != 2 or R.shape[0] == 0:
        raise ValueError(f"R must be a 2-D matrix R[stage][set] with at least one stage, got shape {R.shape}")
    return R


def _seen(R: np.ndarray, seen: Sequence[int] | None) -> list[int]:
    """Default: the sets of every domain trained before the last stage (stage j trains set j)."""
    cols = list(range(min(R.shape[0] - 1, R.shape[1]))) if seen is None else [int(j) for j in seen]
    if any(not 0 <= j < R.shape[1] for j in cols):
        raise ValueError(f"seen set indices {cols} out of range for R with {R.shape[1]} sets")
    return cols


def forgetting(R, seen: Sequence[int] | None = None) -> np.ndarray:
    """Per set j in `seen`: R[last][j] - min over k <= last of R[k][j]. >= 0; > 0 means forgot. Worked example:
    forgetting(R) -> [1.5 - 1.0, 2.5 - 2.0] = [0.5, 0.5] (base and law; med was trained at the last stage)."""
    R = _matrix(R)
    cols = _seen(R, seen)
    return R[-1, cols] - R[:, cols].min(axis=0)


def relative_forgetting(R, seen: Sequence[int] | None = None) -> np.ndarray:
    """Forgetting as a percentage of the set's best (lowest) value: example -> [50.0, 25.0] (0.5/1.0, 0.5/2.0)."""
    R = _matrix(R)
    cols = _seen(R, seen)
    return 100.0 * forgetting(R, cols) / R[:, cols].min(axis=0)


def average_forgetting(R, seen: Sequence[int] | None = None) -> float:
    """Mean of `forgetting` (example: 0.5); nan before any domain is behind us."""
    f = forgetting(R, seen)
    return float(f.mean()) if f.size else math.nan


def max_forgetting(R, seen: Sequence[int] | None = None) -> float:
    """Largest `forgetting` (example: 0.5); nan before any domain is behind us."""
    f = forgetting(R, seen)
    return float(f.max()) if f.size else math.nan


def backward_transfer(R) -> float:
    """BWT (Lopez-Paz & Ranzato 2017) for a loss: mean over sets j trained before the last stage t of
    R[j][j] - R[t][j], the value right after stage j trained set j minus the value now (the base set counts,
    trained at stage 0). Positive = later stages improved it, negative = forgot. It is -forgetting when each set's
    best value was the one right after its own training. Example: ((1.0 - 1.5) + (2.0 - 2.5)) / 2 = -0.5."""
    R = _matrix(R)
    t = R.shape[0] - 1
    cols = _seen(R, None)
    return float(np.mean([R[j, j] - R[t, j] for j in cols])) if cols else math.nan


def forward_transfer(R, num_stages: int | None = None) -> float:
    """FWT for a loss: mean over domains j >= 2 of R[0][j] - R[j-1][j], how much the stages *before* j was trained
    improved it over the base model. Positive = earlier domains helped. Domain 1 is left out: its stage before is
    the base, so its FWT is 0 by construction. `num_stages` (all planned stages) marks later columns as probes;
    default: every column is a domain. Example: only j = 2 (med): 4.0 - 3.0 = 1.0."""
    R = _matrix(R)
    n = R.shape[1] if num_stages is None else min(int(num_stages), R.shape[1])
    vals = [R[0, j] - R[j - 1, j] for j in range(2, min(R.shape[0] + 1, n))]
    return float(np.mean(vals)) if vals else math.nan


def gain(R, j: int) -> float:
    """Improvement on domain j from training on it: R[j-1][j] - R[j][j]. Example: gain(R, 2) = 3.0 - 1.5 = 1.5."""
    R = _matrix(R)
    if not 1 <= j < min(R.shape[0], R.shape[1]):
        raise ValueError(f"gain needs a trained domain 1 <= j < {min(R.shape[0], R.shape[1])}, got j={j}")
    return float(R[j - 1, j] - R[j, j])


def compute_forgetting_rate(current: Mapping[str, float], previous: Mapping[str, float],
                            lower_is_better: bool = True) -> dict[str, float]:
    """The seed's two-snapshot comparison, oriented: over sets in both dicts, forgetting = mean(max(0, worsening))
    and BWT = mean(improvement); `new_task_mean` = mean of current values on sets new in `current` (the seed called
    it FWT, but without a baseline it is not one). No common sets: forgetting = BWT = 0, mean over all of current.
    compute_forgetting_rate({"a": 2.5, "b": 1.0}, {"a": 2.0}) -> forgetting 0.5, BWT -0.5, new_task_mean 1.0."""
    sign = 1.0 if lower_is_better else -1.0
    common = [k for k in current if k in previous]
    worse = [sign * (current[k] - previous[k]) for k in common]
    new = [current[k] for k in current if k not in previous] if common else list(current.values())
    return {"forgetting": float(np.mean(np.maximum(worse, 0.0))) if worse else 0.0,
            "backward_transfer": -float(np.mean(worse)) if worse else 0.0,
            "new_task_mean": float(np.mean(new)) if new else 0.0}


@dataclass
class RMatrix:
    """R[stage][set] in bits per byte, filled one stage at a time. `sets` must start with `stages` (stage j trains
    set j); any further sets are probes. `values` holds the rows filled so far.

        >>> r = RMatrix(["base", "law", "med"], ["base", "law", "med"])
        >>> for row in ([1.0, 3.0, 4.0], [1.2, 2.0, 3.0], [1.5, 2.5, 1.5]): r.append(row)
        >>> r.summary()["average_forgetting"], r.summary()["forward_transfer"]
        (0.5, 1.0)
    """
    stages: list[str]
    sets: list[str]
    values: np.ndarray = field(default=None)  # (stages done, len(sets)) float64

    def __post_init__(self):
        self.stages, self.sets = list(self.stages), list(self.sets)
        if not self.stages or self.sets[:len(self.stages)] != self.stages:
            raise ValueError(f"sets must start with the stages' own test sets in order {self.stages}, got {self.sets}")
        vals = np.zeros((0, len(self.sets))) if self.values is None else np.asarray(self.values, dtype=np.float64)
        if vals.ndim != 2 or vals.shape[1] != len(self.sets) or vals.shape[0] > len(self.stages):
            raise ValueError(f"values must have shape (<= {len(self.stages)}, {len(self.sets)}), got {vals.shape}")
        self.values = vals

    def append(self, row: Sequence[float] | Mapping[str, float]) -> None:
        """Add the next stage's row, as a list in `sets` order or a {set name: value} dict naming every set."""
        if isinstance(row, Mapping):
            missing = [s for s in self.sets if s not in row]
            if missing:
                raise ValueError(f"row is missing set(s) {missing}")
            row = [row[s] for s in self.sets]
        row = np.asarray(row, dtype=np.float64)
        if row.shape != (len(self.sets),):
            raise ValueError(f"a row needs {len(self.sets)} values (one per set), got shape {row.shape}")
        if len(self.values) >= len(self.stages):
            raise ValueError(f"all {len(self.stages)} stages are already filled")
        self.values = np.vstack([self.values, row])

    def to_dict(self) -> dict:
        return {"stages": self.stages, "sets": self.sets, "values": self.values.tolist()}

    @classmethod
    def from_dict(cls, d: Mapping) -> RMatrix:
        return cls(d["stages"], d["sets"], np.asarray(d["values"], dtype=np.float64).reshape(-1, len(d["sets"])))

    def summary(self) -> dict:
        """The metrics after the last filled stage, with per-set forgetting keyed by set name."""
        if len(self.values) == 0:
            raise ValueError("RMatrix is empty: append the base model's row first")
        t, R = len(self.values) - 1, self.values
        seen = self.sets[:t]
        return {"stage": self.stages[t], "forgetting": dict(zip(seen, forgetting(R).tolist(), strict=True)),
                "relative_forgetting_pct": dict(zip(seen, relative_forgetting(R).tolist(), strict=True)),
                "average_forgetting": average_forgetting(R), "max_forgetting": max_forgetting(R),
                "backward_transfer": backward_transfer(R),
                "forward_transfer": forward_transfer(R, len(self.stages)), "gain": gain(R, t) if t else math.nan}


def evaluate(model: Callable[[Tensor], Tensor], token_ids, seq_len: int, batch_size: int,
             num_bytes: int | None = None, jit: bool = True) -> dict[str, float]:
    """Mean next-token loss of `model` over the token stream `token_ids`, in fixed (batch_size, seq_len) batches.

    The stream is cut into windows of seq_len inputs whose targets are the next tokens; windows overlap by one token
    so every token but the first is predicted exactly once (each window starts with fresh context). The last window
    and the last batch are padded with id 0 and masked out, so every call sees one shape (the JIT needs that) and
    the result does not depend on batch_size. Dropout is off (TRAINING=0). With `jit`, batches replay captured
    kernels, several times faster; a minimac model keeps its jit across calls (minimac/jit_cache.py, recaptured when
    a weight buffer, a sub-module or a LoRA mode changes), any other callable gets a fresh one per call. `model`
    must then be a pure function of its input tokens and weights (jit=False for anything else).

    Returns loss (nats per predicted token), perplexity = exp(loss), bits_per_token = loss / ln 2, num_tokens, and
    bits_per_byte = total nats / ln 2 / num_bytes. Bits per byte is what compares fairly: the text is the same
    whatever the tokenizer, so a tokenizer with longer tokens (fewer, harder predictions) or a domain that
    fragments into more tokens per byte (code, maths) is not favoured. `num_bytes` must be the UTF-8 length of the
    text whose tokens are *predicted*; `bits_per_byte_of_text` gets that right for you.
    """
    ids = np.asarray(token_ids)
    if ids.ndim != 1 or ids.dtype.kind not in "iu" or len(ids) < 2:
        raise ValueError(f"token_ids must be a 1-D integer array of at least 2 tokens, got shape {ids.shape} "
                         f"dtype {ids.dtype}")
    for name, v in (("seq_len", seq_len), ("batch_size", batch_size)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v <= 0:
            raise ValueError(f"{name} must be a positive integer, got {v!r}")
    if num_bytes is not None and num_bytes <= 0:
        raise ValueError(f"num_bytes must be positive, got {num_bytes}")
    B, T, n_pred = int(batch_size), int(seq_len), len(ids) - 1
    W = -(-n_pred // T)  # windows, rounded up
    Wb = -(-W // B) * B  # windows padded to whole batches
    flat = np.zeros(Wb * T + 1, dtype=np.int32)
    flat[:len(ids)] = ids
    X, Y = flat[:-1].reshape(Wb, T), flat[1:].reshape(Wb, T)  # (Wb, T) inputs and their next tokens
    M = (np.arange(Wb * T) < n_pred).reshape(Wb, T).astype(np.float32)

    step = _nll_step(model, B, T, jit)
    total = 0.0  # host float64 accumulator: float32 sums over a long text would drift
    with Context(TRAINING=0):
        for b in range(0, Wb, B):
            x = Tensor(X[b:b + B], dtype=dtypes.int32)
            if b == 0:  # check the contract once: ids must index the vocabulary
                vocab = _vocab_size(model, x)
                if ids.max() >= vocab:
                    raise ValueError(f"token id {int(ids.max())} is outside the model's vocabulary of {vocab}")
            total += float(step(x, Tensor(Y[b:b + B], dtype=dtypes.int32), Tensor(M[b:b + B])).item())
    loss = total / n_pred
    return {"loss": loss, "perplexity": math.exp(min(loss, 700.0)), "bits_per_token": loss / LN2,
            "bits_per_byte": total / LN2 / num_bytes if num_bytes else math.nan, "num_tokens": n_pred}


def _vocab_size(model: Callable[[Tensor], Tensor], x: Tensor) -> int:
    """V of a model that maps tokens x (B, T) to logits (B, T, V). A minimac model declares it (config.vocab_size).
    Any other callable is traced once on x, which also checks the logits' shape: tracing builds the whole lazy graph
    of a forward pass, about half a second for nano on a CPU, which the learner would pay twice per update."""
    vocab = getattr(getattr(model, "config", None), "vocab_size", None)
    if isinstance(vocab, int) and hasattr(model, "parameters"):
        return vocab
    B, T = x.shape
    shape = tuple(model(x).shape)
    if len(shape) != 3 or shape[:2] != (B, T):
        raise ValueError(f"model must map tokens (B, T) = {(B, T)} to logits (B, T, V), got {shape}")
    return shape[2]


def _masked_nll(model: Callable[[Tensor], Tensor], x: Tensor, y: Tensor, m: Tensor) -> Tensor:
    """Summed next-token nll of the unmasked positions: x, y (B, T) int, m (B, T) float -> a scalar."""
    logits = model(x).float()  # (B, T, V); float32 even if the model computes in half
    nll = logits.logsumexp(-1) - logits.gather(-1, y.unsqueeze(-1)).squeeze(-1)  # (B, T), stable log-softmax
    return (nll * m).sum().realize()


def _nll_step(model: Callable[[Tensor], Tensor], B: int, T: int, jit: bool) -> Callable[..., Tensor]:
    """The (jitted) batch loss. A minimac model keeps its jit per (B, T) across calls (minimac/jit_cache.py: a fresh
    capture when a weight buffer or a LoRA mode changes), which saves two schedules of the forward pass per call
    (a few hundred ms each for the learner's loss_before / loss_after). Any other callable gets a fresh TinyJit."""
    if not jit:
        return lambda x, y, m: _masked_nll(model, x, y, m)
    if not hasattr(model, "parameters") or not hasattr(model, "config"):
        return TinyJit(lambda x, y, m: _masked_nll(model, x, y, m))
    Tensor.realize(*model.parameters())  # a lazy weight has no buffer yet: the key must see the real ones
    return cached_jit(model, ("nll", B, T), lambda ref: TinyJit(lambda x, y, m: _masked_nll(ref(), x, y, m)))


def bits_per_byte_of_text(model: Callable[[Tensor], Tensor], tokenizer, text: str, seq_len: int,
                          batch_size: int, jit: bool = True) -> float:
    """Bits per UTF-8 byte of `text` under `model`. The text is encoded with `<|endoftext|>` in front, so the first
    real token is predicted too and the bits are paid for exactly the len(text.encode()) bytes of the text."""
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    if not text:
        raise ValueError("text is empty: there is nothing to measure")
    ids = np.array([tokenizer.eot_id, *tokenizer.encode(text)], dtype=np.int64)
    return evaluate(model, ids, seq_len, batch_size, len(text.encode("utf-8")), jit)["bits_per_byte"]
