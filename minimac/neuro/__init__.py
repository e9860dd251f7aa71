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
learning-rate scales from several controllers, and domain-balanced quotas for replay selectors (neuro/base.py).

Leaves out: working memory, predictive coding, liquid time constants and e-prop (dead or broken in the seed, §6.8).

    >>> from minimac.neuro import AutonomousLR, Neuromodulation
    >>> learner = ContinualLearner(model, tok, controllers=[AutonomousLR(), Neuromodulation()])  # doctest: +SKIP
"""
from __future__ import annotations

from typing import Any

from minimac.neuro.autonomous_lr import AutonomousLR, AutonomousLRConfig
from minimac.neuro.base import (  # noqa: F401
    NeuroController,
    check_int,
    check_number,
    domain_quotas,
    lr_scales,
    restore_lr_scales,
    set_lr_scale,
)
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
