"""Lesson 08 reference solution: LoRA in numpy. Shapes: x (N, in), W (out, in), A (r, in), B (out, r)."""
import numpy as np


def lora_init(in_features, out_features, r, rng):
    bound = 1 / np.sqrt(in_features)
    A = rng.uniform(-bound, bound, size=(r, in_features))
    B = np.zeros((out_features, r))
    return A, B


def lora_forward(x, W, A, B, lora_alpha, r):
    scaling = lora_alpha / r
    return x @ W.T + (x @ A.T @ B.T) * scaling  # (N, r) in the middle: never form B @ A


def merge_weights(W, A, B, lora_alpha, r):
    return W + (lora_alpha / r) * B @ A


def unmerge_weights(W_merged, A, B, lora_alpha, r):
    return W_merged - (lora_alpha / r) * B @ A


def lora_grads(x, A, B, grad_out, lora_alpha, r):
    scaling = lora_alpha / r
    h = x @ A.T                               # (N, r)
    dB = scaling * grad_out.T @ h             # (out, r)
    dh = scaling * grad_out @ B               # (N, r): zero while B is zero
    dA = dh.T @ x                             # (r, in)
    return dA, dB


def lora_parameter_count(config, r):
    d, kv, ff = config.d_model, config.num_kv_heads * config.head_dim, config.d_ff
    per_layer = 2 * (d + d) + 2 * (d + kv) + 3 * (d + ff)  # q, o; k, v; w1, w3 and w2 (ff -> d)
    return r * per_layer * config.num_layers
