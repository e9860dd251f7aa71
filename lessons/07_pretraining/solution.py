"""Lesson 07 reference solution: the pieces of a pretraining step (minimac/train.py has the full loop)."""
from __future__ import annotations

import math

import numpy as np
from tinygrad import Tensor, dtypes


def shift_labels(batch: Tensor) -> tuple[Tensor, Tensor]:
    """(B, T+1) token ids -> inputs x (B, T) and targets y (B, T), shifted once."""
    return batch[:, :-1], batch[:, 1:]


def cross_entropy(logits: Tensor, targets: Tensor, ignore_index: int = -1) -> Tensor:
    """Mean over non-ignored positions of logsumexp(logits) - logits[target]."""
    valid = targets != ignore_index                                   # (B, T)
    index = valid.where(targets, 0)                                   # any legal id where ignored
    picked = logits.gather(-1, index.unsqueeze(-1)).squeeze(-1)       # (B, T)
    m = logits.max(-1, keepdim=True).detach()                         # the max is a constant for the gradient
    lse = ((logits - m).exp().sum(-1, keepdim=True).log() + m).squeeze(-1)
    return ((lse - picked) * valid).sum() / valid.sum().maximum(1).cast(dtypes.float32)


def lr_at(step: int, lr: float, min_lr: float, warmup_steps: int, max_steps: int) -> float:
    """Linear warmup, then cosine decay to min_lr at max_steps."""
    if step < warmup_steps:
        return lr * (step + 1) / warmup_steps
    if step >= max_steps:
        return min_lr
    progress = (step - warmup_steps) / (max_steps - warmup_steps)
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * progress)) * (lr - min_lr)


def clip_by_global_norm(grads: list[Tensor], max_norm: float) -> tuple[list[Tensor], Tensor]:
    """All gradients scaled together so that their joint norm is at most max_norm."""
    norm = Tensor.stack(*[g.square().sum() for g in grads]).sum().sqrt()
    scale = (max_norm / (norm + 1e-6)).minimum(1.0)
    return [g * scale for g in grads], norm


def train_step(model, params: list[Tensor], batch: Tensor, lr: float) -> float:
    """One SGD step; returns the loss before the update."""
    x, y = shift_labels(batch)
    loss = cross_entropy(model(x), y)
    grads = loss.gradient(*params)
    value = loss.item()
    for p, g in zip(params, grads):
        p.assign(p - lr * g).realize()
    return value


def adamw_update(w, g, m, v, t: int, lr: float, b1: float = 0.9, b2: float = 0.95, eps: float = 1e-8,
                 weight_decay: float = 0.1):
    """One AdamW step on numpy arrays at step t (1-based); returns the new (w, m, v)."""
    m = b1 * m + (1 - b1) * g
    v = b2 * v + (1 - b2) * g * g
    m_hat, v_hat = m / (1 - b1 ** t), v / (1 - b2 ** t)
    return w - lr * (m_hat / (np.sqrt(v_hat) + eps) + weight_decay * w), m, v


def bits_per_byte(loss_nats_per_token: float, num_tokens: int, num_bytes: int) -> float:
    """Mean loss in nats per predicted token -> bits per byte of the text those tokens spell."""
    return loss_nats_per_token * num_tokens / (math.log(2) * num_bytes)
