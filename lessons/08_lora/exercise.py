"""Lesson 08 exercise: LoRA in numpy. Fill in each function, then run `pytest lessons/08_lora`.

Shapes: x (N, in), W (out, in) as in torch/tinygrad Linear, A (r, in), B (out, r). README.md gives the stages; peek at
minimac/lora_layer.py if stuck.
"""
import numpy as np  # noqa: F401  (you will need it)


def lora_init(in_features, out_features, r, rng):
    """Return (A, B): A (r, in) uniform in [-1/sqrt(in), 1/sqrt(in)] drawn with `rng` (a np.random.Generator),
    B (out, r) zeros, so that a new adapter changes nothing.

    lora_init(4, 3, 2, rng) -> A.shape == (2, 4), |A| <= 0.5, B == np.zeros((3, 2))
    """
    raise NotImplementedError("Stage 1: lora_init")


def lora_forward(x, W, A, B, lora_alpha, r):
    """x @ W.T + (x @ A.T @ B.T) * (lora_alpha / r): the frozen layer plus the low-rank path. (N, in) -> (N, out).

    With B = 0 this is exactly x @ W.T.
    """
    raise NotImplementedError("Stage 2: lora_forward")


def merge_weights(W, A, B, lora_alpha, r):
    """The merged weight W + (lora_alpha / r) * B @ A (a new array; W is not modified). (out, in)."""
    raise NotImplementedError("Stage 3: merge_weights")


def unmerge_weights(W_merged, A, B, lora_alpha, r):
    """Undo merge_weights: W_merged - (lora_alpha / r) * B @ A."""
    raise NotImplementedError("Stage 3: unmerge_weights")


def lora_grads(x, A, B, grad_out, lora_alpha, r):
    """Gradients (dA, dB) of the loss with respect to A (r, in) and B (out, r), given grad_out = dLoss/dy (N, out)
    for y = lora_forward(x, W, A, B, lora_alpha, r). W is frozen, so it does not appear.

    At initialisation (B = 0), dA is all zeros.
    """
    raise NotImplementedError("Stage 4: lora_grads")


def lora_parameter_count(config, r):
    """Number of LoRA parameters for adapters of rank r on q_proj, k_proj, v_proj, o_proj, w1, w2, w3 of every layer
    of a minimac.model.ModelConfig: the sum of r * (in + out). Use config.d_model, config.num_layers,
    config.num_kv_heads, config.head_dim and config.d_ff.

    lora_parameter_count(ModelConfig.from_preset("tiny"), 8) -> 180224
    """
    raise NotImplementedError("Stage 5: lora_parameter_count")
