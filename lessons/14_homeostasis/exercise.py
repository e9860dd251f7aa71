"""Lesson 14 exercise: homeostatic gate rates, thresholds and scaling, and a dendritic (context-gated) SwiGLU.
Fill in each function, then run `pytest lessons/14_homeostasis`. README.md gives the stages; peek at
minimac/neuro/homeostasis.py and minimac/neuro/dendritic.py if stuck. Everything is numpy (float64).
"""
from __future__ import annotations

import numpy as np


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))   # given: never overflows


def gate_rates(y: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """y (N, T, d_ff) gate pre-activations, mask (N, T) with 1 = a real token, 0 = padding.

    Return (rate, std), each (d_ff,): rate_j = mean of sigmoid(y[..., j]) over the real tokens (how far unit j's
    gate is open on average), std_j = the (population) standard deviation of y[..., j] over the same tokens.
    """
    raise NotImplementedError("Stage 1: gate_rates")


def homeostatic_update(avg: np.ndarray, threshold: np.ndarray, gain: np.ndarray, rate: np.ndarray, std: np.ndarray,
                       target_rate: np.ndarray, target_std: np.ndarray, tau: float = 10.0, threshold_lr: float = 1.0,
                       scaling_rate: float = 0.1, limit: float = 5.0, min_gain: float = 0.1, max_gain: float = 10.0
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The set-point rule; return the new (avg, threshold, gain):

        avg <- (1 - 1/tau) avg + rate / tau
        threshold <- clip(threshold + threshold_lr (avg - target_rate), -limit, limit)      (use the NEW avg)
        gain <- clip((1 - scaling_rate) gain + scaling_rate gain target_std / (std + 1e-8), min_gain, max_gain)
    """
    raise NotImplementedError("Stage 2: homeostatic_update")


def inverse_std_scaling(gain: np.ndarray, std: np.ndarray) -> np.ndarray:
    """The designed "synaptic scaling": clip(0.999 gain + 0.001 / (std + 1e-8), 0.1, 10)."""
    raise NotImplementedError("Stage 2: inverse_std_scaling")


def dead_fraction(avg: np.ndarray, dead_rate: float = 0.01) -> float:
    """The share of units whose running rate is below dead_rate. dead_fraction(np.array([0.0, 0.5])) -> 0.5"""
    raise NotImplementedError("Stage 3: dead_fraction")


def dendritic_ffn(x: np.ndarray, w1: np.ndarray, w2: np.ndarray, w3: np.ndarray, gate_w: np.ndarray) -> np.ndarray:
    """x (..., d); w1, w3 (d_ff, d); w2 (d, d_ff); gate_w (K, d). Weights are (out, in): a projection is x @ W.T.

        hidden = silu(x w1^T) * (x w3^T)                      (..., d_ff)   silu(z) = z sigmoid(z)
        gates  = 2 sigmoid(x gate_w^T)                        (..., K)
        split hidden into K compartments of d_ff / K units, multiply compartment k by gates[..., k], then w2.
    """
    raise NotImplementedError("Stage 4: dendritic_ffn")
