"""Lesson 07 exercise: the pieces of a pretraining step. Fill in each function, then `pytest lessons/07_pretraining`.

README.md gives the stages; peek at minimac/train.py if stuck. Tensors are tinygrad Tensors, float32 on the device.
"""
from __future__ import annotations

import math  # noqa: F401

import numpy as np  # noqa: F401
from tinygrad import Tensor, dtypes  # noqa: F401


def shift_labels(batch: Tensor) -> tuple[Tensor, Tensor]:
    """(B, T+1) token ids -> inputs x (B, T) and targets y (B, T), where y[:, t] is the token after x[:, t].

    shift_labels(Tensor([[5, 6, 7, 8]])) -> (Tensor([[5, 6, 7]]), Tensor([[6, 7, 8]]))
    Shift ONCE. (Shifting here and again in the loss would train position t to predict token t+2.)
    """
    raise NotImplementedError("Stage 1: shift_labels")


def cross_entropy(logits: Tensor, targets: Tensor, ignore_index: int = -1) -> Tensor:
    """Mean over non-ignored positions of -log softmax(logits)[target]; logits (B, T, V), targets (B, T) int.

    Write it as logsumexp(logits) - logits[target], with the max subtracted inside the logsumexp so that logits of
    1000 do not overflow. Uniform logits over V classes give log(V). If every target is ignored, return 0 (not nan).
    Hint: valid = targets != ignore_index; logits.gather(-1, index.unsqueeze(-1)) picks one logit per position.
    """
    raise NotImplementedError("Stage 2: cross_entropy")


def lr_at(step: int, lr: float, min_lr: float, warmup_steps: int, max_steps: int) -> float:
    """Learning rate at 0-based `step`: linear warmup, then a cosine from lr down to min_lr, then min_lr for good.

    step < warmup_steps:   lr * (step + 1) / warmup_steps
    step >= max_steps:     min_lr
    otherwise:             min_lr + 0.5 * (1 + cos(pi * progress)) * (lr - min_lr),
                           progress = (step - warmup_steps) / (max_steps - warmup_steps)
    lr_at(0, 1.0, 0.1, 10, 110) -> 0.1;  lr_at(9, ...) -> 1.0;  lr_at(60, ...) -> 0.55;  lr_at(110, ...) -> 0.1
    """
    raise NotImplementedError("Stage 3: lr_at")


def clip_by_global_norm(grads: list[Tensor], max_norm: float) -> tuple[list[Tensor], Tensor]:
    """Scale every gradient by min(1, max_norm / (norm + 1e-6)), norm = sqrt(sum of all squared entries of all grads).

    Returns (clipped grads, norm before clipping as a scalar Tensor). Stay in tinygrad (no .item(), no .numpy()):
    the real version runs inside a TinyJit step, where a host read-back would be frozen at capture time.
    """
    raise NotImplementedError("Stage 4: clip_by_global_norm")


def train_step(model, params: list[Tensor], batch: Tensor, lr: float) -> float:
    """One plain SGD step on a (B, T+1) batch: shift, loss, gradients of `params`, p <- p - lr * grad. Return the
    loss before the update, as a float.

    Hint: loss.gradient(*params) returns one gradient per param; update with p.assign(p - lr * g).realize().
    Use your shift_labels and cross_entropy.
    """
    raise NotImplementedError("Stage 5: train_step")


def adamw_update(w, g, m, v, t: int, lr: float, b1: float = 0.9, b2: float = 0.95, eps: float = 1e-8,
                 weight_decay: float = 0.1):
    """One AdamW step on numpy arrays (float64) at step t (1-based, the t-th update); returns the new (w, m, v).

    m <- b1 m + (1 - b1) g;  v <- b2 v + (1 - b2) g^2;  m_hat = m / (1 - b1^t);  v_hat = v / (1 - b2^t)
    w <- w - lr * (m_hat / (sqrt(v_hat) + eps) + weight_decay * w)
    """
    raise NotImplementedError("Stage 6: adamw_update")


def bits_per_byte(loss_nats_per_token: float, num_tokens: int, num_bytes: int) -> float:
    """The mean loss in nats per predicted token, over num_tokens predicted tokens that spell num_bytes bytes of
    UTF-8 text -> bits per byte. bits_per_byte(math.log(256), 10, 10) -> 8.0 (a uniform guess over 256 bytes)."""
    raise NotImplementedError("Stage 7: bits_per_byte")
