"""Brain-inspired controllers for the continual learner: opt-in, one small module each. Lessons 13-15.

Each controller is a `minimac.learner.hooks.Controller` handed to `ContinualLearner(..., controllers=[...])`. Each one turns
a number the learner already has (the step's loss, its gradient norm, the replay memory, the hidden states) into one
real knob, and shows what it did in `readout()` (also copied into the learner's per-step stats as "<name>.<key>"):

    module            controller          reads                          drives                          lesson
    autonomous_lr     AutonomousLR        loss, previous loss, grad norm  the learning rate                11
    neuromodulation   Neuromodulation     loss and its running averages   lr (DA), replay ratio / EWC      11
                                                                          lambda (5-HT), replay importance
                                                                          (ACh), generation temperature (NE)
    homeostasis       Homeostasis         SwiGLU gate rates on replay     per-unit gain and threshold      12
    dendritic         use_dendritic_ffn   (a model change, not a hook)   context-gated FFN compartments   12
    hippocampus       Hippocampus         hidden states of replay items   which items are replayed         13
    sleep             Sleep               replay, with token flips        LoRA B (Hebbian), pruning        13

Everything here comes from the seed (docs/neuro.md has the audit): most of its neuro modules never ran. Ours run,
and benchmarks/neuro_ablation.py measures each one on and off. Shared here: config validation, the composition of
learning-rate scales from several controllers, and domain-balanced quotas for replay selectors.

Leaves out: working memory, predictive coding, liquid time constants and e-prop (dead or broken in the seed, §6.8).

    >>> from minimac.neuro import AutonomousLR, Neuromodulation
    >>> learner = ContinualLearner(model, tok, controllers=[AutonomousLR(), Neuromodulation()])  # doctest: +SKIP
"""
from __future__ import annotations

import copy
import math
import weakref
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


# Several controllers may scale the learning rate (AutonomousLR, dopamine). Each owns one factor; the learner gets
# config.lr times their product, so they compose instead of overwriting each other. Weak keys: no learner is kept
# alive by this table.
_LR_SCALES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def set_lr_scale(learner: Any, source: str, scale: float, floor: float = 1e-8) -> bool:
    """Set `source`'s factor and give the learner lr = config.lr * product of all factors.

    A NaN, infinite or non-positive scale is never used: NaN/inf keeps the source's previous factor (1.0 at first),
    a value <= 0 becomes `floor`. Returns True when it had to clamp, so the caller can count it in its readout.
    """
    clamped = False
    scales = _LR_SCALES.setdefault(learner, {})
    if not math.isfinite(scale):
        scale, clamped = scales.get(source, 1.0), True
    elif scale <= 0:
        scale, clamped = floor, True
    scales[source] = float(scale)
    learner.set_learning_rate(learner.config.lr * math.prod(scales.values()))
    return clamped


def lr_scales(learner: Any) -> dict[str, float]:
    """The factors currently applied to config.lr, by source."""
    return dict(_LR_SCALES.get(learner, {}))


def restore_lr_scales(learner: Any, scales: dict[str, float]) -> None:
    """Put back the factors of a checkpoint (the learner's learning rate itself is restored by the checkpoint)."""
    _LR_SCALES[learner] = {str(k): float(v) for k, v in scales.items()}


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


from minimac.neuro.autonomous_lr import AutonomousLR, AutonomousLRConfig
from minimac.neuro.dendritic import DendriticConfig, DendriticFFN, use_dendritic_ffn
from minimac.neuro.hippocampus import Hippocampus, HippocampusConfig
from minimac.neuro.homeostasis import Homeostasis, HomeostasisConfig
from minimac.neuro.neuromodulation import Neuromodulation, NeuromodulationConfig
from minimac.neuro.sleep import Sleep, SleepConfig

# every controller by the name --neuro and the benchmarks use; hippocampus first, because the first controller whose
# select_replay answers chooses the replay, and the hippocampus weighs by importance
CONTROLLER_NAMES = ("hippocampus", "autonomous_lr", "neuromodulation", "homeostasis", "sleep")


def build_controllers(names: list[str], model: Any = None) -> list[NeuroController]:
    """The controllers named (CONTROLLER_NAMES), in the order given, each with its default config. Homeostasis wraps
    `model`'s feed-forward layers, so it needs the model; the others ignore it.

    >>> [c.name for c in build_controllers(["sleep", "hippocampus"])]
    ['sleep', 'hippocampus']
    """
    make = {"hippocampus": Hippocampus, "autonomous_lr": AutonomousLR, "neuromodulation": Neuromodulation,
            "homeostasis": lambda: Homeostasis(model), "sleep": Sleep}
    if unknown := [n for n in names if n not in make]:
        raise ValueError(f"unknown controller(s) {unknown}; choose from {', '.join(CONTROLLER_NAMES)}")
    return [make[n]() for n in names]


__all__ = [
    "CONTROLLER_NAMES",
    "AutonomousLR",
    "AutonomousLRConfig",
    "DendriticConfig",
    "DendriticFFN",
    "Hippocampus",
    "HippocampusConfig",
    "Homeostasis",
    "HomeostasisConfig",
    "NeuroController",
    "Neuromodulation",
    "NeuromodulationConfig",
    "Sleep",
    "SleepConfig",
    "build_controllers",
    "check_number",
    "domain_quotas",
    "lr_scales",
    "restore_lr_scales",
    "set_lr_scale",
    "use_dendritic_ffn",
]
