"""Where a controller plugs into the continual learner: the `Controller` base class and its three hooks. Lesson 14.

The brain-inspired controllers of lessons 11-13 (minimac/neuro/) are opt-in objects handed to
`ContinualLearner(..., controllers=[...])`. The learner calls every controller, in list order, at three moments:

    on_step(learner, stats)          after every optimizer step. `stats` holds step, loss (task CE), ewc (penalty),
                                     grad_norm (before clipping), lr, replay_ratio, domain, tokens. To steer the next
                                     step call learner.set_learning_rate(x), learner.set_replay_ratio(x) or
                                     learner.set_ewc_lambda(x).
    select_replay(learner, n)        before each step that replays: return n Experiences (from learner.replay) to
                                     use instead of the default per-domain balanced draw, or None to keep it.
    on_domain_end(learner, domain)   at each domain boundary of `learn_stream` (after EWC's consolidation): the place
                                     for "sleep" (offline replay, pruning, re-weighting the buffer).

Why setters and not attributes: the jitted step reads the learning rate and the EWC lambda from device Tensors that
are updated in place (`Tensor.assign`), so a new value takes effect at the next step without recompiling (a Python
float would be frozen into the captured kernels). The replay ratio only shapes the host-side batch, so any value in
[0, 1] works at once. No controller changes the learning rate unless it calls the setter: nothing overrides
`learning_rate` silently (the seed's "autonomous" rate did, pinned at 1e-2).

Leaves out: the controllers themselves (lessons 11-13) and their checkpointing (a controller that has state should
save it itself).

    >>> class Halve(Controller):
    ...     def on_domain_end(self, learner, domain):
    ...         learner.set_learning_rate(learner.learning_rate / 2)
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from minimac.replay import Experience


class Controller:
    """Base class with no-op hooks: override only the ones you need."""

    def on_step(self, learner: Any, stats: dict) -> None:
        """Called after every optimizer step with that step's numbers; may call the learner's setters."""

    def select_replay(self, learner: Any, n: int) -> list[Experience] | None:
        """Return n experiences to replay this step, or None for the learner's default draw."""
        return None

    def on_domain_end(self, learner: Any, domain: str) -> None:
        """Called when `learn_stream` finishes a domain, after consolidation (the "sleep" slot)."""
