"""What the brain-inspired controllers share: the NeuroController base, config checks, the composition of
learning-rate scales from several controllers, and domain-balanced quotas for replay selectors. Lessons 11-13.
"""
from __future__ import annotations

import copy
import math
from typing import Any

import numpy as np

from minimac.learner.hooks import Controller


class NeuroController(Controller):
    """A Controller with a name and a `readout()`; `publish(stats)` copies the readout into the step's stats.

    `state_fields` names the attributes a checkpoint keeps (`state_dict` / `load_state_dict`): numbers, strings,
    lists, dicts, numpy arrays, and numpy Generators (saved as their bit generator's state, so a resumed run draws
    the same numbers).
    """

    name = "neuro"
    state_fields: tuple[str, ...] = ()

    def readout(self) -> dict[str, float]:
        return {}

    def publish(self, stats: dict) -> None:
        stats.update({f"{self.name}.{k}": v for k, v in self.readout().items()})

    def state_dict(self) -> dict[str, Any]:
        out = {}
        for field in self.state_fields:
            value = getattr(self, field)
            out[field] = value.bit_generator.state if isinstance(value, np.random.Generator) else copy.deepcopy(value)
        return out

    def load_state_dict(self, state: dict[str, Any]) -> None:
        missing = [f for f in self.state_fields if f not in state]
        if missing:
            raise ValueError(f"{type(self).__name__} state has no {', '.join(missing)}")
        for field in self.state_fields:
            if isinstance(getattr(self, field), np.random.Generator):
                getattr(self, field).bit_generator.state = state[field]
            else:
                setattr(self, field, copy.deepcopy(state[field]))


def check_number(owner: str, name: str, value: Any, low: float | None = None, high: float | None = None,
                 low_ok: bool = True, high_ok: bool = True) -> float:
    """Return float(value), or raise ValueError naming `owner.name` and the allowed range.

    >>> check_number("SleepConfig", "flip_prob", 0.05, 0.0, 1.0)
    0.05
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{owner}.{name} must be a finite number, got {value!r}")
    if (low is not None and (value < low or (value == low and not low_ok))) or \
            (high is not None and (value > high or (value == high and not high_ok))):
        lo = "" if low is None else f"{low} {'<=' if low_ok else '<'} "
        hi = "" if high is None else f" {'<=' if high_ok else '<'} {high}"
        raise ValueError(f"{owner}.{name} must satisfy {lo}{name}{hi}, got {value!r}")
    return float(value)


def check_int(owner: str, name: str, value: Any, low: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{owner}.{name} must be an integer >= {low}, got {value!r}")
    return value


# Several controllers may scale the learning rate (AutonomousLR, dopamine). Each owns one factor, kept in the
# learner's `lr_scales`; the learner gets config.lr times their product, so they compose instead of overwriting.


def set_lr_scale(learner: Any, source: str, scale: float, floor: float = 1e-8) -> bool:
    """Set `source`'s factor and give the learner lr = config.lr * product of all factors.

    A NaN, infinite or non-positive scale is never used: NaN/inf keeps the source's previous factor (1.0 at first),
    a value <= 0 becomes `floor`. Returns True when it had to clamp, so the caller can count it in its readout.
    """
    clamped = False
    scales = learner.lr_scales
    if not math.isfinite(scale):
        scale, clamped = scales.get(source, 1.0), True
    elif scale <= 0:
        scale, clamped = floor, True
    scales[source] = float(scale)
    learner.set_learning_rate(learner.config.lr * math.prod(scales.values()))
    return clamped


def lr_scales(learner: Any) -> dict[str, float]:
    """The factors currently applied to config.lr, by source."""
    return dict(learner.lr_scales)


def restore_lr_scales(learner: Any, scales: dict[str, float]) -> None:
    """Put back the factors of a checkpoint (the learner's learning rate itself is restored by the checkpoint)."""
    learner.lr_scales = {str(k): float(v) for k, v in scales.items()}


def domain_quotas(sizes: dict[str, int], n: int) -> dict[str, int]:
    """Hand out n draws round robin over domains (sorted), never more than a domain holds; as sample_by_domain.

    >>> domain_quotas({"a": 1, "b": 5}, 4)
    {'a': 1, 'b': 3}
    """
    sizes = dict(sorted(sizes.items()))
    want, left = {d: 0 for d in sizes}, min(n, sum(sizes.values()))
    while left > 0:
        for d, size in sizes.items():
            if left > 0 and want[d] < size:
                want[d], left = want[d] + 1, left - 1
    return want
