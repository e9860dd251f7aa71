"""Within one `learn_from_text` call: the learning rate's schedule and early stopping on held-out text. Lesson 14.

- `lr_factor`: a linear warmup over the first warmup_ratio of the call's steps, then "constant", or a "cosine" or
  "linear" decay to min_lr_ratio x lr at the last step. Every call (a new domain, a new fact) starts its own
  warmup: what a fine-tuning run does, as against the one schedule of a pretraining run (minimac/train.py).
  LoRA starts from B = 0 and moves fast at first; a high constant rate overshoots on small texts, and the decay
  lets a higher peak rate be used (docs/forgetting.md measures it).
- `EarlyStopping`: the last `holdout_fraction` of the new text's chunks are never trained on; their loss is checked
  every `eval_every` steps, training stops after `patience` checks without a better one, and the best weights seen
  (and the optimizer's state with them) are put back.

Leaves out: the training step (minimac/learner/step.py), which text to hold out across domains.
"""
from __future__ import annotations

import math
from typing import Any

LR_SCHEDULES = ("constant", "cosine", "linear")


def lr_factor(step: int, steps: int, schedule: str = "constant", warmup_ratio: float = 0.0,
          min_lr_ratio: float = 0.1) -> float:
    """The multiplier of lr at step `step` (0-based) of `steps`: warmup, then the schedule.

    >>> [round(lr_factor(k, 10, "cosine", 0.1, 0.0), 3) for k in (0, 1, 5, 9)]   # 1 warmup step, then 1 -> 0
    [0.5, 1.0, 0.5, 0.0]
    """
    warmup = math.floor(warmup_ratio * steps)
    if step < warmup:
        return (step + 1) / (warmup + 1)
    if schedule == "constant" or steps - warmup <= 1:
        return 1.0
    t = (step - warmup) / (steps - warmup - 1)   # 0 at the first step after warmup, 1 at the last
    shape = 0.5 * (1 + math.cos(math.pi * t)) if schedule == "cosine" else 1 - t
    return min_lr_ratio + (1 - min_lr_ratio) * shape


class EarlyStopping:
    """Early stopping on held-out ids: their loss every `eval_every` steps; stop after `patience` checks without a
    better one; `finish` puts back the best weights (and optimizer state) seen. With no held-out ids: never stops."""

    def __init__(self, learner: Any, trainer: Any, held: list[int] | None, steps: int):
        self.learner, self.trainer, self.held = learner, trainer, held
        self.every = learner.config.eval_every or max(1, steps // 10)
        self.best, self.best_step, self.best_state, self.bad, self.last = math.inf, None, None, 0, 0

    def check(self, step: int) -> bool:
        if self.held is None or step % self.every:
            return False
        loss, self.last = self.learner._loss_on(self.held), step
        if loss < self.best:
            self.best, self.best_step, self.best_state, self.bad = loss, step, self.trainer.snapshot(), 0
        else:
            self.bad += 1
        return self.bad >= self.learner.config.patience

    def finish(self, steps_done: int) -> None:
        if self.held is None:
            return
        if self.last != steps_done:  # the weights after the last step were not checked yet
            loss = self.learner._loss_on(self.held)
            if loss < self.best:
                self.best, self.best_step, self.best_state = loss, steps_done, None
        if self.best_state is not None and self.best_step != steps_done:
            self.trainer.restore(self.best_state)
