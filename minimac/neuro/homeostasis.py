"""Homeostasis: adaptive thresholds and synaptic scaling that hold each SwiGLU unit near its own firing rate. Lesson 14.

Source: the seed's HomeostaticNeuron (seed-analysis §6.4), which nothing ever called. Its rule, per unit j, on
y = x * scaling - threshold with rate = mean over rows of sigmoid(y):

    avg_j <- (1 - 1/tau) avg_j + rate_j / tau
    threshold_j <- clip(threshold_j + threshold_lr (avg_j - target), -5, 5)            adaptive threshold
    scaling_j <- clip(0.999 scaling_j + 0.001 / (std_j(y) + 1e-8), 0.1, 10)             "synaptic scaling"

Here the unit is a SwiGLU hidden unit: `install` rewrites each block's feed-forward to
w2(silu(w1(x) * gain - threshold) * w3(x)), so sigmoid(y) is exactly how far the unit's gate is open, and rate is
its mean. gain (the seed's scaling) and threshold are new per-unit vectors (d_ff,) owned by this controller, not
weights of the model: the frozen base is never touched, the optimizer never sees them (they are set by the rule,
not by gradients), and `model.state_dict()` does not list them (save them with `state_dict()` here). At gain 1 and
threshold 0 the model computes exactly what it did before `install`.

Two rules. rule="seed" is the formula above with the seed's global target rate 0.1, which would shut most gates
of a trained SwiGLU (their rates sit near 0.5), and its scaling drifts to 1/std even when nothing changed.
rule="setpoint" (default) keeps the seed's threshold formula but each unit's target is its own rate measured at the
first probe (before the new domain moved it), and scaling moves the gain towards the value that restores the unit's
first-probe spread: gain <- (1 - r) gain + r gain std*_j / std_j. That is homeostatic plasticity as Turrigiano (2008,
"The self-tuning neuron") describes it: each neuron returns to its own set point after a perturbation.
Rates are measured by a probe forward pass (no gradients) on replay items every `probe_every` steps.
`dead_fraction` in the readout is the share of units whose running rate is below `dead_rate` (seed: 0.01).

Where the metaphor ends: a "firing rate" here is the mean gate opening of a smooth unit over a few replayed
sequences; real homeostasis acts on spiking over hours. The gain and threshold are two extra vectors per layer.
Leaves out: homeostasis of attention, intrinsic plasticity of the up (w3) path, the seed's batch-norm option.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from tinygrad import Tensor, dtypes

from minimac.neuro.base import NeuroController, check_int, check_number


@dataclass
class HomeostasisConfig:
    rule: str = "setpoint"        # "setpoint" (each unit's own first-probe rate and spread) or "seed"
    target_rate: float = 0.1      # the seed rule's global target
    tau: float = 10.0             # probes; the seed's 1000 was in training steps
    threshold_lr: float = 1.0     # seed 0.01 per step
    scaling_rate: float = 0.1     # setpoint rule's r; the seed's rule uses its own 0.001
    threshold_limit: float = 5.0  # seed
    min_gain: float = 0.1         # seed's scaling clamp
    max_gain: float = 10.0
    dead_rate: float = 0.01       # seed's get_dead_neuron_ratio threshold
    probe_every: int = 10         # steps between probes
    probe_rows: int = 4
    seed: int = 0

    def __post_init__(self):
        n = "HomeostasisConfig"
        if self.rule not in ("setpoint", "seed"):
            raise ValueError(f"{n}.rule must be 'setpoint' or 'seed', got {self.rule!r}")
        self.target_rate = check_number(n, "target_rate", self.target_rate, 0.0, 1.0, low_ok=False, high_ok=False)
        self.tau = check_number(n, "tau", self.tau, 1.0)
        self.threshold_lr = check_number(n, "threshold_lr", self.threshold_lr, 0.0)
        self.scaling_rate = check_number(n, "scaling_rate", self.scaling_rate, 0.0, 1.0)
        self.threshold_limit = check_number(n, "threshold_limit", self.threshold_limit, 0.0, low_ok=False)
        self.min_gain = check_number(n, "min_gain", self.min_gain, 0.0, 1.0, low_ok=False)
        self.max_gain = check_number(n, "max_gain", self.max_gain, 1.0)
        self.dead_rate = check_number(n, "dead_rate", self.dead_rate, 0.0, 1.0)
        check_int(n, "probe_every", self.probe_every)
        check_int(n, "probe_rows", self.probe_rows)

    @classmethod
    def seed_defaults(cls) -> HomeostasisConfig:
        """The seed's constants (per training step; here per probe, so use probe_every=1 to match)."""
        return cls(rule="seed", tau=1000.0, threshold_lr=0.01, probe_every=1)


def homeostatic_update(avg: np.ndarray, threshold: np.ndarray, gain: np.ndarray, rate: np.ndarray, std: np.ndarray,
                       cfg: HomeostasisConfig, target_rate: np.ndarray | float, target_std: np.ndarray | None = None
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One homeostatic step for a vector of units: (avg, threshold, gain) after seeing `rate` and `std` (float64)."""
    avg = (1 - 1 / cfg.tau) * avg + rate / cfg.tau
    threshold = np.clip(threshold + cfg.threshold_lr * (avg - target_rate), -cfg.threshold_limit, cfg.threshold_limit)
    if cfg.rule == "seed":
        gain = 0.999 * gain + 0.001 / (std + 1e-8)
    else:
        gain = (1 - cfg.scaling_rate) * gain + cfg.scaling_rate * gain * target_std / (std + 1e-8)
    return avg, threshold, np.clip(gain, cfg.min_gain, cfg.max_gain)


class _Units:
    """gain and threshold of one layer. __slots__ (no __dict__): tinygrad's get_state_dict and LoRA's model walk
    do not see these tensors, so they never reach model.parameters(), the optimizer or model.save()."""
    __slots__ = ("gain", "original", "record", "threshold")

    def __init__(self, d_ff: int, original: Any):
        self.original = original                   # the plain SwiGLU, for remove()
        self.gain = Tensor.ones(d_ff, dtype=dtypes.float32).contiguous().realize()
        self.threshold = Tensor.zeros(d_ff, dtype=dtypes.float32).contiguous().realize()
        self.record: list[Tensor] | None = None   # a list while probing: the forward appends y there


class HomeostaticSwiGLU:
    """SwiGLU with a per-unit gain and threshold on the gate: w2(silu(w1(x) * gain - threshold) * w3(x))."""

    def __init__(self, ffn: Any):
        self.w1, self.w2, self.w3 = ffn.w1, ffn.w2, ffn.w3   # the same objects: names and LoRA wrappers are kept
        self.dropout = getattr(ffn, "dropout", 0.0)
        self.units = _Units(ffn.w1.weight.shape[0], ffn)

    def __call__(self, x: Tensor) -> Tensor:
        y = self.w1(x) * self.units.gain - self.units.threshold            # (..., d_ff)
        if self.units.record is not None:
            self.units.record.append(y)
        return self.w2((y.silu() * self.w3(x)).dropout(self.dropout))


class Homeostasis(NeuroController):
    """Installs the homeostatic SwiGLU in every block at construction; updates gain/threshold every probe."""

    name = "homeostasis"
    state_fields = ("rng", "avg", "target_rate", "target_std", "threshold", "gain", "last", "probes")

    def __init__(self, model: Any, config: HomeostasisConfig | None = None):
        self.config = HomeostasisConfig() if config is None else config
        if not isinstance(self.config, HomeostasisConfig):
            raise TypeError(f"config must be a HomeostasisConfig, got {type(self.config).__name__}")
        self.model, self.rng = model, np.random.default_rng(self.config.seed)
        self.ffns = install(model)
        d_ff = self.ffns[0].w1.weight.shape[0]
        shape = self.gain_shape = (len(self.ffns), d_ff)
        self.avg, self.target_rate, self.target_std = np.full(shape, math.nan), None, None
        self.threshold, self.gain = np.zeros(shape), np.ones(shape)
        self.last: dict[str, float] = {}
        self.probes = 0

    def probe(self, tokens: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per-layer, per-unit (rate, std) of y over the non-padding tokens of `tokens` (rows, T), 0 = padding."""
        mask = Tensor((tokens != 0).astype(np.float32))[..., None]          # (P, T, 1)
        for f in self.ffns:
            f.units.record = []
        try:
            self.model.hidden_states(Tensor(tokens.astype(np.int32)))
            ys = [f.units.record[0] for f in self.ffns]
        finally:
            for f in self.ffns:
                f.units.record = None
        count = mask.sum()
        rates = [(y.sigmoid() * mask).sum((0, 1)) / count for y in ys]                 # (d_ff,) each
        means = [(y * mask).sum((0, 1)) / count for y in ys]
        stds = [(((y - m) ** 2 * mask).sum((0, 1)) / count).sqrt() for y, m in zip(ys, means)]
        out = Tensor.stack(Tensor.stack(*rates), Tensor.stack(*stds)).detach().numpy().astype(np.float64)
        return out[0], out[1]                                                           # (layers, d_ff) each

    def step(self, tokens: np.ndarray) -> None:
        """Probe, then one homeostatic update of every unit; the new gain/threshold are assigned in place (JIT-safe)."""
        rate, std = self.probe(tokens)
        c = self.config
        if self.target_rate is None:   # the first probe fixes each unit's set point
            self.target_rate = rate.copy() if c.rule == "setpoint" else np.full_like(rate, c.target_rate)
            self.target_std, self.avg = std.copy(), rate.copy()
        self.avg, self.threshold, self.gain = homeostatic_update(self.avg, self.threshold, self.gain, rate, std, c,
                                                                 self.target_rate, self.target_std)
        for i, f in enumerate(self.ffns):
            f.units.gain.assign(Tensor(self.gain[i].astype(np.float32))).realize()
            f.units.threshold.assign(Tensor(self.threshold[i].astype(np.float32))).realize()
        self.probes += 1
        self.last = {"rate": float(rate.mean()), "drift": float(np.abs(rate - self.target_rate).mean())}

    def on_step(self, learner: Any, stats: dict) -> None:
        items = learner.replay.experiences
        if items and (stats["global_step"] - 1) % self.config.probe_every == 0:
            pick = self.rng.choice(len(items), size=min(self.config.probe_rows, len(items)), replace=False)
            T = learner.config.seq_len
            tokens = np.zeros((self.config.probe_rows, T), dtype=np.int32)   # fixed shape: kernels are reused
            for row, i in enumerate(pick):
                ids = items[i].input_ids[:T]
                tokens[row, :len(ids)] = ids
            self.step(tokens)
        self.publish(stats)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """The statistics, set points, gain and threshold of a checkpoint; gain and threshold go into the model."""
        super().load_state_dict(state)
        for name in ("avg", "threshold", "gain"):
            value = np.asarray(getattr(self, name), dtype=np.float64)
            if value.shape != self.gain_shape:
                raise ValueError(f"homeostasis state {name} has shape {value.shape}, the model needs {self.gain_shape}")
            setattr(self, name, value)
        for i, f in enumerate(self.ffns):
            f.units.gain.assign(Tensor(self.gain[i].astype(np.float32))).realize()
            f.units.threshold.assign(Tensor(self.threshold[i].astype(np.float32))).realize()

    def readout(self) -> dict[str, float]:
        dead = float((self.avg < self.config.dead_rate).mean()) if self.probes else math.nan
        return {"dead_fraction": dead, "mean_gain": float(self.gain.mean()),
                "mean_abs_threshold": float(np.abs(self.threshold).mean()), "probes": float(self.probes),
                **self.last}

    def remove(self) -> None:
        """Put the plain SwiGLU back in every block (the gain and threshold are dropped)."""
        for layer, f in zip(self.model.layers, self.ffns):
            layer.feed_forward = f.units.original


def install(model: Any) -> list[HomeostaticSwiGLU]:
    """Swap every block's feed-forward for a HomeostaticSwiGLU (identity at install); returns them in layer order.

    Call it before the learner's first step: a TinyJit captured on the old forward would keep running it.
    """
    out = []
    for i, layer in enumerate(model.layers):
        ffn = layer.feed_forward
        if isinstance(ffn, HomeostaticSwiGLU):
            raise TypeError(f"layer {i} already has a homeostatic feed-forward; install homeostasis only once")
        if type(ffn).__name__ != "SwiGLU":
            raise TypeError(f"layer {i}'s feed_forward is a {type(ffn).__name__}; homeostasis wraps SwiGLU only")
        layer.feed_forward = HomeostaticSwiGLU(ffn)
        out.append(layer.feed_forward)
    return out
