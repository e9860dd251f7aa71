"""Lesson 13 exercise: the five-factor learning rate and dopamine / serotonin. Fill in each function, then run
`pytest lessons/13_neuromodulation`. README.md gives the stages; peek at minimac/neuro/autonomous_lr.py and
minimac/neuro/neuromodulation.py if stuck. Everything here is plain Python floats: no tensors needed.
"""
from __future__ import annotations

import math  # noqa: F401

INITIAL_STATE = {"avg_loss": 1.0, "avg_gradient_norm": 0.1, "avg_prediction_error": 1.0, "success_rate": 0.5,
                 "gradient_variance": 0.1, "metabolic_cost": 0.0}


def update_statistics(state: dict, loss: float, grad_norms: list[float], alpha: float = 0.01,
                      prediction_error: float | None = None, previous_loss: float | None = None) -> dict:
    """One step of the designed running statistics; return a NEW dict (leave `state` alone). With g = mean(grad_norms):

        avg_gradient_norm <- (1-a) avg_gradient_norm + a g
        gradient_variance <- (1-a) gradient_variance + a spread, where spread = the unbiased variance of grad_norms
                             (two or more norms), or (g - old avg_gradient_norm)^2 for a single norm
        avg_loss <- (1-a) avg_loss + a loss
        avg_prediction_error <- (1-a) avg_prediction_error + a prediction_error, or = the new avg_loss if it is None
        success_rate <- (1-a) success_rate + a [previous_loss > loss]     (only when previous_loss is given)
        metabolic_cost <- 0.99 metabolic_cost + 0.01 g * (the new avg_loss)
    """
    raise NotImplementedError("Stage 1: update_statistics")


def five_factors(state: dict, uncertainty_weight: float = 0.5, metabolic_cost_weight: float = 0.1) -> dict:
    """{"error": sqrt(avg_prediction_error / (1 + avg_loss)), "gradient": 1 / (1 + avg_gradient_norm),
    "uncertainty": 1 + uncertainty_weight sqrt(gradient_variance), "meta": 0.5 + success_rate,
    "metabolic": 1 / (1 + metabolic_cost_weight metabolic_cost)}.

    five_factors(INITIAL_STATE)["error"] -> 0.7071 (sqrt(1 / 2))
    """
    raise NotImplementedError("Stage 1: five_factors")


def clamped_rate(product: float, sensitivity: float = 1.0, min_rate: float = 1e-6, max_rate: float = 1e-2) -> float:
    """The rule as designed: clamp(sensitivity * product, min_rate, max_rate). clamped_rate(0.7) -> 0.01"""
    raise NotImplementedError("Stage 2: clamped_rate")


def relative_rate(product: float, reference: float, base_lr: float, sensitivity: float = 1.0,
                  min_scale: float = 0.1, max_scale: float = 10.0) -> float:
    """minimac's rule: base_lr * clip((product / reference) ** sensitivity, min_scale, max_scale).

    relative_rate(0.7, 0.7, 2e-3) -> 0.002 (the configured rate);  relative_rate(0.35, 0.7, 2e-3) -> 0.001
    """
    raise NotImplementedError("Stage 2: relative_rate")


def dopamine_step(avg_loss: float, trace: float, loss: float, speed: float = 0.1) -> tuple[float, float]:
    """(rpe, new trace): rpe = (avg_loss - loss) / avg_loss (> 0 when the loss beat its running average);
    trace <- (1 - speed) trace + speed rpe.  dopamine_step(4.0, 0.0, 3.0) -> (0.25, 0.025)
    """
    raise NotImplementedError("Stage 3: dopamine_step")


def dopamine_level(trace: float, gain: float = 5.0, low: float = 0.1, high: float = 3.0) -> float:
    """clip(1 + gain * trace, low, high): the factor on the learning rate. dopamine_level(0.025) -> 1.125"""
    raise NotImplementedError("Stage 3: dopamine_level")


def serotonin_step(level: float, fast: float, slow: float, step: float = 0.01, threshold: float = 0.02) -> float:
    """level + step if |slow - fast| / slow < threshold (the loss settled: more stability), else level - step
    (still moving: more plasticity); clamped to [0, 2].  serotonin_step(0.5, 3.0, 3.0) -> 0.51
    """
    raise NotImplementedError("Stage 4: serotonin_step")
