"""The continual learner, lesson 11: the one orchestrator of lessons 07-10, as a small package.

    strategies.py   LearnerConfig: which strategy (full, lora, replay, EWC, adapter-per-domain) and its knobs
    mixing.py       cutting text into chunks; a batch of new and replayed rows
    step.py         the jitted training step: weighted cross-entropy + EWC, clipping, AdamW on what is trainable
    schedule.py     within one call: learning-rate warmup and decay, early stopping on held-out text
    learner.py      ContinualLearner: learn_from_text, learn_stream, evaluate, generate
    routing.py      which adapter answers a prompt; evaluation and generation through it
    hooks.py        the Controller interface that the brain-inspired controllers (minimac/neuro/) implement
    checkpoint.py   saving and loading a learner (atomic), through its state_dict

    >>> from minimac.learner import ContinualLearner, LearnerConfig   # doctest: +SKIP
"""
from minimac.learner.learner import ContinualLearner
from minimac.learner.strategies import STRATEGIES, LearnerConfig

__all__ = ["STRATEGIES", "ContinualLearner", "LearnerConfig"]
