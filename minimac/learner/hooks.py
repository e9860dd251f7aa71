"""Where a controller plugs into the continual learner: the `Controller` base class and its three hooks. Lesson 11.

The brain-inspired controllers of lessons 13-15 (minimac/neuro/) are opt-in objects handed to
`ContinualLearner(..., controllers=[...])`. The learner calls every controller, in list order, at three moments:

    on_step(learner, stats)          after every optimizer step. `stats` holds step, loss (task CE), ewc (penalty),
                                     grad_norm (before clipping), lr, replay_ratio, domain, tokens. To steer the next
                                     step call learner.set_learning_rate(x), learner.set_replay_ratio(x) or
                                     learner.set_ewc_lambda(x).
    select_replay(learner, n, new)   before each step that replays: return n Experiences (from learner.replay) to
                                     use instead of the default per-domain balanced draw, or None to keep it. `new`
                                     is the step's new chunks (token-id arrays): what replay is mixed with (e.g.
                                     the hippocampus's recall cue).
    on_domain_end(learner, domain)   at each domain boundary of `learn_stream` (after EWC's consolidation): the place
                                     for "sleep" (offline replay, pruning, re-weighting the buffer).

Why setters and not attributes: the jitted step reads the learning rate and the EWC lambda from device Tensors that
are updated in place (`Tensor.assign`), so a new value takes effect at the next step without recompiling (a Python
float would be frozen into the captured kernels). The replay ratio only shapes the host-side batch, so any value in
[0, 1] works at once. No controller changes the learning rate unless it calls the setter: nothing overrides
`learning_rate` silently (the seed's "autonomous" rate did, pinned at 1e-2).

Checkpoints: `learner.save_checkpoint(dir)` stores every controller's `state_dict()` (JSON-able values, top-level
numpy arrays) under its `name`, and `ContinualLearner.load_checkpoint(dir, controllers)` hands it back to the
controller of the same name through `load_state_dict`, so an interrupted run resumes with its running averages,
counters and memories (minimac/learner/checkpoint.py).

Leaves out: the controllers themselves (lessons 13-15).

    >>> class Halve(Controller):
    ...     def on_domain_end(self, learner, domain):
    ...         learner.set_learning_rate(learner.learning_rate / 2)
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

    from minimac.replay import Experience


class Controller:
    """Base class with no-op hooks: override only the ones you need."""

    def on_step(self, learner: Any, stats: dict) -> None:
        """Called after every optimizer step with that step's numbers; may call the learner's setters."""

    def select_replay(self, learner: Any, n: int, new: list[np.ndarray] | None = None) -> list[Experience] | None:
        """Return n experiences to replay this step (mixed with the `new` chunks), or None for the default draw."""
        return None

    def on_domain_end(self, learner: Any, domain: str) -> None:
        """Called when `learn_stream` finishes a domain, after consolidation (the "sleep" slot)."""

    def state_dict(self) -> dict[str, Any]:
        """What a checkpoint keeps to resume this controller: JSON-able values and top-level numpy arrays. {}: none."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Take back what `state_dict()` returned (JSON turns tuples into lists and dict keys into strings)."""


def controller_keys(controllers: Any) -> dict[str, Any]:
    """{key: controller}: the key is the controller's `name` (its class name if it has none), "#2", "#3"... added
    for repeats, so the same list of controllers gets the same keys when it is built again (a checkpoint's state
    goes back to the controller of the same key)."""
    out: dict[str, Any] = {}
    for c in controllers:
        base = str(getattr(c, "name", type(c).__name__))
        key, i = base, 2
        while key in out:
            key, i = f"{base}#{i}", i + 1
        out[key] = c
    return out


def controller_states(controllers: Any) -> dict[str, dict]:
    """{key: {"class": class name, "state": its state_dict()}} for every controller with state (the learner's
    state_dict()["controllers"])."""
    out = {}
    for key, c in controller_keys(controllers).items():
        state = c.state_dict() if callable(getattr(c, "state_dict", None)) else {}
        if state:
            out[key] = {"class": type(c).__name__, "state": state}
    return out


def check_controller_states(controllers: Any, saved: dict[str, dict]) -> None:
    """ValueError when a saved state (`controller_states`) would go to a controller of another class."""
    live = controller_keys(controllers)
    for key, entry in saved.items():
        if key in live and entry["class"] != type(live[key]).__name__:
            raise ValueError(f"it has state for a {entry['class']} named {key!r}, not for the "
                             f"{type(live[key]).__name__} passed under that name")


def load_controller_states(controllers: Any, saved: dict[str, dict]) -> None:
    """Give each controller the state saved under its key (`controller_states`; check_controller_states first); a
    saved state with no controller of its key is left unused (resuming without a controller is allowed)."""
    live = controller_keys(controllers)
    for key, entry in saved.items():
        if key in live:
            try:
                live[key].load_state_dict(entry["state"])
            except (KeyError, TypeError, ValueError) as e:
                raise ValueError(f"cannot restore controller {key!r}: {type(e).__name__}: {e}") from None
