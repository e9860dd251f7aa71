"""The seed's "autonomous" learning rate: five running statistics multiplied into one step size. Lesson 13.

Source: the seed's AutonomousLearningRateController (seed-analysis §6.1), kept formula for formula. With
alpha = adaptation_speed, g = mean of the per-tensor gradient norms, L = loss, PE = prediction error:

    avgG <- (1-a) avgG + a g          gVar <- (1-a) gVar + a var(norms)      avgL  <- (1-a) avgL + a L
    avgPE <- (1-a) avgPE + a PE       success <- (1-a) success + a [previous L > L]
    metabolic <- 0.99 metabolic + 0.01 g avgL
    error = sqrt(avgPE / (1 + avgL))     gradient = 1 / (1 + avgG)     uncertainty = 1 + 0.5 sqrt(gVar)
    meta  = 0.5 + success                metabolic = 1 / (1 + 0.1 metabolic)
    seed:  lr = clamp(base_sensitivity * error * gradient * uncertainty * meta * metabolic, 1e-6, 1e-2)

Two seed bugs, fixed here. (1) The product is about 0.7, so at base_sensitivity 1.0 the clamp always binds: every
step of the seed ran at lr 1e-2 (mode="seed" reproduces it: the `saturated` counter counts those steps). Ours
(mode="relative") scales around the configured learning rate instead: lr = config.lr * (product / product at the
first step) ** base_sensitivity, clipped to [min_scale, max_scale] times config.lr, so it starts at the rate you
chose and only the *changes* of the five statistics move it. (2) The trainer never passed the previous loss, so
`success` sat at 0.5; ours feeds the real previous step's loss. Our learner reports one global gradient norm, not
one per tensor: given a single norm, gVar becomes the running variance of that norm over steps (the seed's formula
needs two or more tensors and would leave gVar frozen). `warm_start` starts the averages at the first observation
instead of the seed's constants (avgL = 1.0 when real losses are ~5 nats made the first ~300 steps a ramp).

Where the metaphor ends: "metabolic cost", "success history" and "uncertainty" are names for exponential moving
averages of the loss and the gradient norm; nothing here models energy or confidence. It echoes adaptive step-size
methods (Jacobs 1988 "delta-bar-delta"; Schaul, Zhang & LeCun 2013 "No more pesky learning rates"), not a brain.
Leaves out: the seed's AdaptiveOptimizer (plain SGD) and e-prop. A NaN or non-positive rate is never used: it is
clamped and counted (`lr_clamped` in the readout).

    >>> ctl = AutonomousLR(AutonomousLRConfig(mode="seed", warm_start=False))
    >>> round(ctl.update(loss=5.0, grad_norms=[0.5]), 3)          # sensitivity * product of the five factors
    0.749
    >>> ctl.rate(0.749, base_lr=2e-4)                              # ~75x the seed's ceiling: clamped, every step
    0.01
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from minimac.neuro.base import NeuroController, check_number, lr_scales, set_lr_scale

SEED_STATE = {"avg_loss": 1.0, "avg_gradient_norm": 0.1, "avg_prediction_error": 1.0, "success_rate": 0.5,
              "gradient_variance": 0.1, "metabolic_cost": 0.0}


@dataclass
class AutonomousLRConfig:
    base_sensitivity: float = 1.0       # seed: multiplies the product; relative mode: its exponent
    adaptation_speed: float = 0.01      # alpha of the running averages (seed)
    uncertainty_weight: float = 0.5     # seed
    metabolic_cost_weight: float = 0.1  # seed
    mode: str = "relative"              # "relative" (ours) or "seed" (absolute clamp, saturates)
    min_rate: float = 1e-6              # seed mode's clamp
    max_rate: float = 1e-2
    min_scale: float = 0.1              # relative mode: lr stays within [min_scale, max_scale] * config.lr
    max_scale: float = 10.0
    warm_start: bool = True

    def __post_init__(self):
        n = "AutonomousLRConfig"
        self.base_sensitivity = check_number(n, "base_sensitivity", self.base_sensitivity, 0.0, low_ok=False)
        self.adaptation_speed = check_number(n, "adaptation_speed", self.adaptation_speed, 0.0, 1.0, low_ok=False)
        self.uncertainty_weight = check_number(n, "uncertainty_weight", self.uncertainty_weight, 0.0)
        self.metabolic_cost_weight = check_number(n, "metabolic_cost_weight", self.metabolic_cost_weight, 0.0)
        self.min_rate = check_number(n, "min_rate", self.min_rate, 0.0, low_ok=False)
        self.max_rate = check_number(n, "max_rate", self.max_rate, self.min_rate)
        self.min_scale = check_number(n, "min_scale", self.min_scale, 0.0, 1.0, low_ok=False)
        self.max_scale = check_number(n, "max_scale", self.max_scale, 1.0)
        if self.mode not in ("relative", "seed"):
            raise ValueError(f"AutonomousLRConfig.mode must be 'relative' or 'seed', got {self.mode!r}")
        if not isinstance(self.warm_start, bool):
            raise TypeError(f"AutonomousLRConfig.warm_start must be a bool, got {self.warm_start!r}")

    @classmethod
    def seed_defaults(cls) -> AutonomousLRConfig:
        """The seed's controller exactly: absolute clamp [1e-6, 1e-2], its initial averages."""
        return cls(mode="seed", warm_start=False)


def update_statistics(state: dict[str, float], loss: float, grad_norms: Sequence[float], alpha: float,
                      prediction_error: float | None = None, previous_loss: float | None = None) -> dict[str, float]:
    """One step of the seed's running statistics (a new dict). One norm: gVar tracks its variance over steps."""
    s, a = dict(state), alpha
    norms = np.asarray(grad_norms, dtype=np.float64)
    g = float(norms.mean())
    spread = float(norms.var(ddof=1)) if len(norms) > 1 else (g - s["avg_gradient_norm"]) ** 2
    s["avg_gradient_norm"] = (1 - a) * s["avg_gradient_norm"] + a * g
    s["gradient_variance"] = (1 - a) * s["gradient_variance"] + a * spread
    s["avg_loss"] = (1 - a) * s["avg_loss"] + a * loss
    s["avg_prediction_error"] = (s["avg_loss"] if prediction_error is None
                                 else (1 - a) * s["avg_prediction_error"] + a * prediction_error)
    if previous_loss is not None:
        s["success_rate"] = (1 - a) * s["success_rate"] + a * float(previous_loss > loss)
    s["metabolic_cost"] = 0.99 * s["metabolic_cost"] + 0.01 * (g * s["avg_loss"])
    return s


def five_factors(state: dict[str, float], config: AutonomousLRConfig) -> dict[str, float]:
    """The seed's five factors from the running statistics (NaN if the statistics are nonsense, e.g. a loss < -1)."""
    ratio = state["avg_prediction_error"] / (1.0 + state["avg_loss"])
    return {"error": math.sqrt(ratio) if ratio >= 0 else math.nan,
            "gradient": 1.0 / (1.0 + state["avg_gradient_norm"]),
            "uncertainty": 1.0 + config.uncertainty_weight * math.sqrt(max(state["gradient_variance"], 0.0)),
            "meta": 0.5 + state["success_rate"],
            "metabolic": 1.0 / (1.0 + config.metabolic_cost_weight * state["metabolic_cost"])}


class AutonomousLR(NeuroController):
    """Sets the learner's learning rate after every step from the five factors (see the module docstring)."""

    name = "autonomous_lr"
    state_fields = ("state", "factors", "reference", "previous_loss", "lr", "scale", "counts")

    def __init__(self, config: AutonomousLRConfig | None = None):
        self.config = AutonomousLRConfig() if config is None else config
        if not isinstance(self.config, AutonomousLRConfig):
            raise TypeError(f"config must be an AutonomousLRConfig, got {type(self.config).__name__}")
        self.state = dict(SEED_STATE)
        self.factors: dict[str, float] = {}
        self.reference: float | None = None   # the product at the first step (relative mode)
        self.previous_loss: float | None = None
        self.lr, self.scale = math.nan, 1.0
        self.counts = {"steps": 0, "saturated": 0, "lr_clamped": 0, "nonfinite_inputs": 0}

    def update(self, loss: float, grad_norms: Sequence[float], prediction_error: float | None = None,
               previous_loss: float | None = None) -> float:
        """Fold one step into the statistics; return base_sensitivity * product (the seed's unclamped rate)."""
        if self.config.warm_start and self.counts["steps"] == 0:
            g = float(np.mean(grad_norms))
            pe = loss if prediction_error is None else prediction_error
            self.state.update(avg_loss=loss, avg_prediction_error=pe, avg_gradient_norm=g, gradient_variance=0.0,
                              metabolic_cost=g * loss)
        self.state = update_statistics(self.state, loss, grad_norms, self.config.adaptation_speed,
                                       prediction_error, previous_loss)
        self.factors = five_factors(self.state, self.config)
        self.counts["steps"] += 1
        return self.config.base_sensitivity * math.prod(self.factors.values())

    def rate(self, raw: float, base_lr: float) -> float:
        """The learning rate for a product `raw`: the seed's absolute clamp, or ours around `base_lr`."""
        c = self.config
        if not math.isfinite(raw) or raw <= 0:
            return raw  # the caller clamps and counts it
        if c.mode == "seed":
            lo, hi, target = c.min_rate, c.max_rate, raw
        else:
            product = raw / c.base_sensitivity
            self.reference = product if self.reference is None else self.reference
            lo, hi = base_lr * c.min_scale, base_lr * c.max_scale
            target = base_lr * (product / self.reference) ** c.base_sensitivity
        lr = min(max(target, lo), hi)
        self.counts["saturated"] += lr != target
        return lr

    def on_step(self, learner: Any, stats: dict) -> None:
        loss = stats["loss"] + stats.get("ewc", 0.0)   # the seed's "loss" was task + EWC; its PE the task loss
        norms = stats.get("grad_norms") or [stats["grad_norm"]]
        if not all(math.isfinite(v) for v in (loss, stats["loss"], *norms)):
            self.counts["nonfinite_inputs"] += 1   # keep the statistics clean and the rate as it was
        else:
            raw = self.update(loss, norms, prediction_error=stats["loss"], previous_loss=self.previous_loss)
            self.previous_loss = loss
            lr = self.rate(raw, learner.config.lr)
            self.counts["lr_clamped"] += set_lr_scale(learner, self.name, lr / learner.config.lr)
            self.scale = lr_scales(learner)[self.name]
            self.lr = learner.learning_rate
        self.publish(stats)

    def readout(self) -> dict[str, float]:
        return {"lr": self.lr, "scale": self.scale, **{f"f_{k}": v for k, v in self.factors.items()},
                "avg_loss": self.state["avg_loss"], "success_rate": self.state["success_rate"],
                **{k: float(v) for k, v in self.counts.items()}}
