"""Lesson 14 solution: homeostatic gate rates, thresholds and scaling, and a dendritic (context-gated) SwiGLU, in numpy.

The library versions are minimac/neuro/homeostasis.py and minimac/neuro/dendritic.py.
"""
from __future__ import annotations

import numpy as np


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))   # never overflows


def gate_rates(y: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per unit j: the mean of sigmoid(y[..., j]) and the std of y[..., j] over the positions where mask is 1."""
    rows = y[mask.astype(bool)]                     # (positions, d_ff)
    return sigmoid(rows).mean(0), rows.std(0)


def homeostatic_update(avg: np.ndarray, threshold: np.ndarray, gain: np.ndarray, rate: np.ndarray, std: np.ndarray,
                       target_rate: np.ndarray, target_std: np.ndarray, tau: float = 10.0, threshold_lr: float = 1.0,
                       scaling_rate: float = 0.1, limit: float = 5.0, min_gain: float = 0.1, max_gain: float = 10.0
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The set-point rule: (avg, threshold, gain) after one probe."""
    avg = (1 - 1 / tau) * avg + rate / tau
    threshold = np.clip(threshold + threshold_lr * (avg - target_rate), -limit, limit)
    gain = np.clip((1 - scaling_rate) * gain + scaling_rate * gain * target_std / (std + 1e-8), min_gain, max_gain)
    return avg, threshold, gain


def inverse_std_scaling(gain: np.ndarray, std: np.ndarray) -> np.ndarray:
    """The designed "synaptic scaling": clip(0.999 gain + 0.001 / (std + 1e-8), 0.1, 10)."""
    return np.clip(0.999 * gain + 0.001 / (std + 1e-8), 0.1, 10.0)


def dead_fraction(avg: np.ndarray, dead_rate: float = 0.01) -> float:
    """The share of units whose running rate is below dead_rate."""
    return float(np.mean(avg < dead_rate))


def dendritic_ffn(x: np.ndarray, w1: np.ndarray, w2: np.ndarray, w3: np.ndarray, gate_w: np.ndarray) -> np.ndarray:
    """w2( (silu(x w1^T) * (x w3^T)) split into K compartments, each times 2 sigmoid(x gate_w^T)[k] )."""
    K, d_ff = gate_w.shape[0], w1.shape[0]
    z = x @ w1.T
    hidden = z * sigmoid(z) * (x @ w3.T)                                    # (..., d_ff)
    gates = 2 * sigmoid(x @ gate_w.T)                                       # (..., K)
    parts = hidden.reshape(*hidden.shape[:-1], K, d_ff // K) * gates[..., None]
    return parts.reshape(hidden.shape) @ w2.T
