"""Lesson 13 solution: the five-factor learning rate and dopamine / serotonin, as plain functions on floats.

The library versions are minimac/neuro/autonomous_lr.py and minimac/neuro/neuromodulation.py.
"""
from __future__ import annotations

import math

INITIAL_STATE = {"avg_loss": 1.0, "avg_gradient_norm": 0.1, "avg_prediction_error": 1.0, "success_rate": 0.5,
                 "gradient_variance": 0.1, "metabolic_cost": 0.0}


def update_statistics(state: dict, loss: float, grad_norms: list[float], alpha: float = 0.01,
                      prediction_error: float | None = None, previous_loss: float | None = None) -> dict:
    """One step of the designed running statistics; returns a new dict (the input is left alone)."""
    s = dict(state)
    g = sum(grad_norms) / len(grad_norms)
    if len(grad_norms) > 1:
        spread = sum((n - g) ** 2 for n in grad_norms) / (len(grad_norms) - 1)   # unbiased variance
    else:
        spread = (g - s["avg_gradient_norm"]) ** 2                               # one norm: its variance over steps
    s["avg_gradient_norm"] = (1 - alpha) * s["avg_gradient_norm"] + alpha * g
    s["gradient_variance"] = (1 - alpha) * s["gradient_variance"] + alpha * spread
    s["avg_loss"] = (1 - alpha) * s["avg_loss"] + alpha * loss
    if prediction_error is None:
        s["avg_prediction_error"] = s["avg_loss"]
    else:
        s["avg_prediction_error"] = (1 - alpha) * s["avg_prediction_error"] + alpha * prediction_error
    if previous_loss is not None:
        s["success_rate"] = (1 - alpha) * s["success_rate"] + alpha * float(previous_loss > loss)
    s["metabolic_cost"] = 0.99 * s["metabolic_cost"] + 0.01 * g * s["avg_loss"]
    return s


def five_factors(state: dict, uncertainty_weight: float = 0.5, metabolic_cost_weight: float = 0.1) -> dict:
    """{"error", "gradient", "uncertainty", "meta", "metabolic"} from the statistics."""
    return {"error": math.sqrt(state["avg_prediction_error"] / (1 + state["avg_loss"])),
            "gradient": 1 / (1 + state["avg_gradient_norm"]),
            "uncertainty": 1 + uncertainty_weight * math.sqrt(state["gradient_variance"]),
            "meta": 0.5 + state["success_rate"],
            "metabolic": 1 / (1 + metabolic_cost_weight * state["metabolic_cost"])}


def clamped_rate(product: float, sensitivity: float = 1.0, min_rate: float = 1e-6, max_rate: float = 1e-2) -> float:
    """The rule as designed: clamp(sensitivity * product, min_rate, max_rate)."""
    return min(max(sensitivity * product, min_rate), max_rate)


def relative_rate(product: float, reference: float, base_lr: float, sensitivity: float = 1.0,
                  min_scale: float = 0.1, max_scale: float = 10.0) -> float:
    """minimac's rule: base_lr * clip((product / reference) ** sensitivity, min_scale, max_scale)."""
    return base_lr * min(max((product / reference) ** sensitivity, min_scale), max_scale)


def dopamine_step(avg_loss: float, trace: float, loss: float, speed: float = 0.1) -> tuple[float, float]:
    """(rpe, new trace): rpe = (avg_loss - loss) / avg_loss; trace <- (1 - speed) trace + speed rpe."""
    rpe = (avg_loss - loss) / avg_loss
    return rpe, (1 - speed) * trace + speed * rpe


def dopamine_level(trace: float, gain: float = 5.0, low: float = 0.1, high: float = 3.0) -> float:
    """clip(1 + gain * trace, low, high): the factor on the learning rate."""
    return min(max(1 + gain * trace, low), high)


def serotonin_step(level: float, fast: float, slow: float, step: float = 0.01, threshold: float = 0.02) -> float:
    """+step if |slow - fast| / slow < threshold (settled: stability), else -step (plasticity); clamp to [0, 2]."""
    progress = abs(slow - fast) / slow
    return min(max(level + (step if progress < threshold else -step), 0.0), 2.0)
