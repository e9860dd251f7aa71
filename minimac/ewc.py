"""Elastic weight consolidation (EWC, Kirkpatrick et al. 2017) with Avalanche's names. Lesson 10.

After learning an experience, EWC remembers where each trainable number was (the anchor theta*) and how much the old
data cared about it (the diagonal Fisher F). While learning the next experience it adds the penalty

    ewc_lambda / 2 * sum_k sum_i F_k,i * (theta_i - theta*_k,i)^2

so numbers the old data relied on stay put and unimportant ones are free to move.

Fisher (the seed's estimator, `empirical_fisher`): the *empirical* diagonal Fisher, i.e. squared gradients of the
loss on the true labels (not labels sampled from the model). With `per_sample=True` every batch is cut into rows and
F = mean over rows of (d summed-token-NLL of that row / d theta)^2, exactly what the seed computes with its batches of
one. `per_sample=False` is the cheaper per-batch estimate (one gradient per batch, (grad of the batch's summed loss)^2
/ batch size): equal in expectation when the mean gradient is near zero, as at the end of training, but noisier.
By default each tensor is then divided by its own maximum, as the seed does (see `normalize_fisher`).

Modes (Avalanche): "separate" keeps one (F_k, theta*_k) per past experience; "online" keeps one running
F <- decay_factor * F_old + F_new anchored at the latest parameters.

JIT: `penalty()` reads only fixed-shape device buffers (F_tot, abar, const, lambda), updated in place with `assign`,
so a TinyJit step captured before a consolidation sees the new values after it; the `ewc_lambda` setter assigns too.
The buffers are not parameters (`is_param_(False)`, tinygrad 0.14's requires_grad=False) and live outside the model.

    >>> ewc = EWC(ewc_lambda=1000.0, mode="separate")
    >>> fisher = empirical_fisher(params, loss_fn, batches)   # after learning experience 1
    >>> ewc.consolidate(params, fisher)
    >>> loss = task_loss + ewc.penalty(params)                # while learning experience 2

Not covered: the true (model-sampled) Fisher, K-FAC or other non-diagonal Fishers, synaptic intelligence, MAS.
"""
from __future__ import annotations

import json
import os
import pathlib
from collections.abc import Callable, Iterable

import numpy as np
from tinygrad import Context, Tensor, TinyJit, dtypes

from minimac.files import atomic_write, read_safetensors, write_safetensors
from minimac.ops import sum_all

MODES = ("separate", "online")
CONFIG_NAME, WEIGHTS_NAME = "ewc_config.json", "ewc.safetensors"


def _leaves(batch) -> tuple[list[Tensor], Callable[[list[Tensor]], object], tuple]:
    """A batch (a Tensor, or a tuple/list/dict of Tensors sharing dim 0) -> its Tensors, a function rebuilding the
    batch from Tensors, and a description of its structure."""
    if isinstance(batch, dict):
        keys = tuple(batch)
        leaves, rebuild, structure = [batch[k] for k in keys], lambda ts: dict(zip(keys, ts)), ("dict", keys)
    elif isinstance(batch, (tuple, list)):
        kind = type(batch)
        leaves, rebuild, structure = list(batch), lambda ts: kind(ts), (kind.__name__,)
    else:
        leaves, rebuild, structure = [batch], lambda ts: ts[0], ("tensor",)
    if not leaves or not all(isinstance(t, Tensor) for t in leaves):
        raise TypeError(f"a batch must be a Tensor or a tuple/list/dict of Tensors, got {type(batch).__name__}")
    return leaves, rebuild, structure


def _accumulator(params: list[Tensor], fisher: list[Tensor], loss_fn: Callable, rebuild: Callable) -> Callable:
    def accumulate(*leaves: Tensor) -> None:
        loss = loss_fn(rebuild(list(leaves)))
        if not isinstance(loss, Tensor) or loss.shape != ():
            raise ValueError(f"loss_fn must return a scalar Tensor, got {getattr(loss, 'shape', loss)!r}")
        # per batch: sum_b (sum of B row gradients)^2 / sum_b B, which is E[g_row^2] when the mean gradient is ~0
        # (the seed weighted each batch by B instead: B times bigger, which its max-normalisation then hid)
        for f, g in zip(fisher, loss.gradient(*params)):
            f.assign(f + g.float() * g.float())
        Tensor.realize(*fisher)
    return accumulate


def normalize_fisher(fisher: list[Tensor]) -> list[Tensor]:
    """F / (max F + 1e-8) per tensor, as the seed does.

    Why: the raw Fisher's scale depends on sequence length, vocabulary, batch size and how far training got, so the
    same ewc_lambda would mean very different things across models; normalised, every tensor lies in [0, 1] and
    ewc_lambda alone sets the strength. The price: the relative importance *between* tensors is lost (each tensor's
    most important number gets 1). Pass `normalize=False` to `empirical_fisher` to keep the raw values.
    """
    return [(f / (f.max() + 1e-8)).realize() for f in fisher]


def empirical_fisher(params: list[Tensor], loss_fn: Callable[[object], Tensor], batches: Iterable,
                     per_sample: bool = True, normalize: bool = True, max_samples: int | None = None,
                     jit: bool = True) -> list[Tensor]:
    """Diagonal empirical Fisher of `loss_fn` (which should return the *summed* token NLL) for each tensor in params.

    Runs with TRAINING off (no dropout, as the seed's model.eval()) and uses `loss.gradient`, so no `.grad` is left
    behind (FIX: the seed left the last sample's gradients in .grad). Worked example: one weight w, loss
    0.5 * (w x - y)^2, rows (x, y) = (1, 0) and (2, 0) at w = 1: gradients 1 and 4, raw Fisher (1 + 16) / 2 = 8.5.

    Speed: one forward/backward per row is slow eagerly (tinygrad schedules every call anew), so each distinct row
    shape gets its own TinyJit'd accumulator (one per shape, never fed another length). That needs `loss_fn` to be a
    pure function of its batch Tensors and the params; pass `jit=False` if it reads host values or changes them.
    """
    if not params:
        raise ValueError("empirical_fisher needs at least one parameter tensor")
    if max_samples is not None and max_samples < 1:
        raise ValueError(f"max_samples must be >= 1 or None, got {max_samples}")
    fisher = [Tensor.zeros(*p.shape, dtype=dtypes.float32).contiguous().realize() for p in params]
    steps: dict[tuple, Callable] = {}  # row signature -> accumulator
    n = 0
    with Context(TRAINING=0):
        for batch in batches:
            if max_samples is not None and n >= max_samples:
                break  # also ends an endless stream of batches
            leaves, rebuild, structure = _leaves(batch)
            host = [t.numpy() for t in leaves]  # rows are cut on the host: fresh, realized JIT inputs, no kernels
            size = host[0].shape[0]
            for i in range(size) if per_sample else [None]:
                if max_samples is not None and n >= max_samples:
                    break
                piece = [Tensor(a[i:i + 1] if per_sample else a, device=t.device) for a, t in zip(host, leaves)]
                key = (structure, tuple((p.shape, p.dtype) for p in piece))
                if key not in steps:
                    step = _accumulator(params, fisher, loss_fn, rebuild)
                    steps[key] = TinyJit(step) if jit else step
                steps[key](*[p.realize() for p in piece])
                n += 1 if per_sample else size
    if n == 0:
        raise ValueError("empirical_fisher got no batches")
    fisher = [(f / n).realize() for f in fisher]
    return normalize_fisher(fisher) if normalize else fisher


def _buffer(array: np.ndarray) -> Tensor:
    return Tensor(np.ascontiguousarray(array, dtype=np.float32)).is_param_(False).realize()


class EWC:
    """EWC penalty with Avalanche's knobs: ewc_lambda, mode="separate"|"online", decay_factor (online only)."""

    def __init__(self, ewc_lambda: float = 1000.0, mode: str = "separate", decay_factor: float = 0.9):
        if mode not in MODES:
            raise ValueError(f"unknown EWC mode {mode!r}; choose one of {MODES}")
        if not 0.0 <= decay_factor <= 1.0:
            raise ValueError(f"decay_factor must be in [0, 1], got {decay_factor}")
        self.mode, self.decay_factor = mode, float(decay_factor)
        self._lambda = _buffer(np.zeros(1))
        self.ewc_lambda = ewc_lambda
        # per experience, host float32 copies: [(fisher arrays, anchor arrays)]; "online" keeps just one entry
        self.experiences: list[tuple[list[np.ndarray], list[np.ndarray]]] = []
        self._F: list[Tensor] = []    # F_tot per tensor (device buffers, fixed shapes)
        self._abar: list[Tensor] = []  # Fisher-weighted mean anchor per tensor
        self._const = _buffer(np.zeros(1))

    @property
    def ewc_lambda(self) -> float:
        return float(self._lambda.numpy()[0])

    @ewc_lambda.setter
    def ewc_lambda(self, value: float) -> None:
        if not value >= 0:
            raise ValueError(f"ewc_lambda must be >= 0, got {value}")
        self._lambda.assign(Tensor([float(value)], dtype=dtypes.float32)).realize()  # in place: a JIT sees it

    @property
    def num_experiences(self) -> int:
        return len(self.experiences)

    def _check(self, shapes: list[tuple], what: str) -> None:
        held = [tuple(f.shape) for f in self._F]
        if self._F and [tuple(s) for s in shapes] != held:
            raise ValueError(f"{what}: this EWC holds tensors of shapes {held}, got {[tuple(s) for s in shapes]}")

    def consolidate(self, params: list[Tensor], fisher: list[Tensor]) -> None:
        """End of an experience: remember (fisher, current params) and refresh the penalty buffers."""
        if [f.shape for f in fisher] != [p.shape for p in params]:
            raise ValueError(f"consolidate: fisher shapes {[f.shape for f in fisher]} differ from params "
                             f"{[p.shape for p in params]}")
        self._check([p.shape for p in params], "consolidate")
        new_f = [f.numpy().astype(np.float32) for f in fisher]
        anchor = [p.numpy().astype(np.float32) for p in params]
        if self.mode == "online" and self.experiences:
            old_f = self.experiences[0][0]
            self.experiences = [([self.decay_factor * o + n for o, n in zip(old_f, new_f)], anchor)]
        else:
            self.experiences.append((new_f, anchor))
        self._refresh()

    def _refresh(self) -> None:
        # Why one (F_tot, abar, const) set is enough, per number (host float64, so the subtraction loses nothing):
        #   sum_k F_k (theta - a_k)^2 = F_tot theta^2 - 2 theta sum_k F_k a_k + sum_k F_k a_k^2
        #                             = F_tot (theta - abar)^2 + [sum_k F_k a_k^2 - F_tot abar^2]
        # with F_tot = sum_k F_k and abar = sum_k F_k a_k / F_tot. The bracket is a constant (no gradient), and where
        # F_tot = 0 every F_k is 0, so abar can be anything (the latest anchor) and the bracket is 0. The penalty is
        # thus the same fixed-shape expression whatever the number of experiences: one jitted graph for all of them.
        F, abar, const = [], [], 0.0
        for i in range(len(self.experiences[0][0])):
            fs = [np.asarray(e[0][i], np.float64) for e in self.experiences]
            anchors = [np.asarray(e[1][i], np.float64) for e in self.experiences]
            f_tot, s1 = sum(fs), sum(f * a for f, a in zip(fs, anchors))
            mean = np.where(f_tot > 0, s1 / np.where(f_tot > 0, f_tot, 1.0), anchors[-1])
            const += float(sum((f * a * a).sum() for f, a in zip(fs, anchors)) - (f_tot * mean * mean).sum())
            F.append(f_tot)
            abar.append(mean)
        if not self._F:
            self._F, self._abar = [_buffer(f) for f in F], [_buffer(a) for a in abar]
        else:  # assign into the same buffers, so a captured TinyJit reads the new values
            for buf, value in zip(self._F + self._abar, F + abar):
                buf.assign(Tensor(value.astype(np.float32))).realize()
        self._const.assign(Tensor([max(const, 0.0)], dtype=dtypes.float32)).realize()

    def penalty(self, params: list[Tensor]) -> Tensor:
        """ewc_lambda / 2 * sum F_tot (theta - abar)^2 + const: a scalar Tensor (zero before any consolidation)."""
        if not self._F:  # zero buffers now, so a step jitted before the first consolidation already has the graph
            self._F = [_buffer(np.zeros(p.shape)) for p in params]
            self._abar = [_buffer(np.zeros(p.shape)) for p in params]
        self._check([p.shape for p in params], "penalty")
        total = sum_all([(p - a.detach()) ** 2 * f.detach() for p, f, a in zip(params, self._F, self._abar)])
        return (self._lambda.detach() * 0.5 * (total + self._const.detach())).reshape(())

    def buffers(self) -> list[Tensor]:
        """The device buffers the penalty reads (never parameters, never handed to an optimizer)."""
        return [self._lambda, self._const, *self._F, *self._abar]

    # ---- state ----
    def state_dict(self) -> dict[str, Tensor]:
        """{"experiences.{k}.fisher.{i}": F, "experiences.{k}.anchor.{i}": theta*}; i follows the params order."""
        out = {}
        for k, (fisher, anchor) in enumerate(self.experiences):
            for i, (f, a) in enumerate(zip(fisher, anchor)):
                out[f"experiences.{k}.fisher.{i}"], out[f"experiences.{k}.anchor.{i}"] = Tensor(f), Tensor(a)
        return out

    def load_state_dict(self, state_dict: dict[str, Tensor]) -> None:
        arrays = {k: (v.numpy() if isinstance(v, Tensor) else np.asarray(v)).astype(np.float32)
                  for k, v in state_dict.items()}
        if bad := [k for k in arrays if len(k.split(".")) != 4 or not k.startswith("experiences.")]:
            raise ValueError(f"EWC state dict keys look like 'experiences.0.fisher.3', got {bad[0]!r}")
        experiences = []
        for k in range(len({key.split(".")[1] for key in arrays})):
            n = sum(1 for key in arrays if key.startswith(f"experiences.{k}.fisher."))
            try:
                experiences.append(([arrays[f"experiences.{k}.fisher.{i}"] for i in range(n)],
                                    [arrays[f"experiences.{k}.anchor.{i}"] for i in range(n)]))
            except KeyError as e:
                raise ValueError(f"EWC state dict is missing {e.args[0]}") from e
        if self.mode == "online" and len(experiences) > 1:
            raise ValueError(f"an online EWC holds one experience, this state dict has {len(experiences)}")
        if experiences:
            self._check([a.shape for a in experiences[0][0]], "load_state_dict")
        self.experiences = experiences
        if experiences:
            self._refresh()
        else:  # back to "no penalty", in the same buffers
            for buf in [*self._F, self._const]:
                buf.assign(Tensor.zeros(*buf.shape, dtype=dtypes.float32)).realize()

    def save(self, directory: str | os.PathLike) -> None:
        """ewc_config.json + ewc.safetensors in `directory`, each written atomically (minimac/files.py)."""
        directory = pathlib.Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        state = self.state_dict()
        atomic_write(directory / WEIGHTS_NAME, lambda tmp: write_safetensors(tmp, state))
        config = {"ewc_lambda": self.ewc_lambda, "mode": self.mode, "decay_factor": self.decay_factor,
                  "num_experiences": self.num_experiences}
        atomic_write(directory / CONFIG_NAME, json.dumps(config, indent=2))

    @classmethod
    def load(cls, directory: str | os.PathLike) -> EWC:
        directory = pathlib.Path(directory)
        for file in (directory / CONFIG_NAME, directory / WEIGHTS_NAME):
            if not file.is_file():
                raise FileNotFoundError(f"no {file.name} in {directory}; write one with EWC.save(directory)")
        try:
            config = json.loads((directory / CONFIG_NAME).read_text())
            ewc = cls(config["ewc_lambda"], config["mode"], config["decay_factor"])
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            raise ValueError(f"{directory / CONFIG_NAME} is not a valid EWC config ({type(e).__name__}: {e})") from e
        tensors = read_safetensors(directory / WEIGHTS_NAME)     # a bad file: an error that names it
        ewc.load_state_dict(tensors)
        if ewc.num_experiences != config.get("num_experiences", ewc.num_experiences):
            raise ValueError(f"{directory} is inconsistent: the config says {config['num_experiences']} experiences, "
                             f"the tensors hold {ewc.num_experiences}")
        return ewc
