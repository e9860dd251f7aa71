"""Every neuro controller on a real ContinualLearner run: the learning rate reaches the optimizer as a Tensor without
recapturing the jitted step, the replay selector is used, sleep runs at the domain boundary, and every readout
shows up in the step stats. Slow (a real training run compiles the step): `pytest -m slow`."""
import itertools

import numpy as np
import pytest

from minimac.learner import ContinualLearner
from minimac.learner.hooks import Controller
from minimac.learner.strategies import LearnerConfig
from minimac.model import ModelConfig, Transformer
from minimac.neuro import AutonomousLR, Hippocampus, Homeostasis, Neuromodulation, Sleep, SleepConfig, lr_scales
from minimac.tokenizer import Tokenizer

pytestmark = pytest.mark.slow


class Spy(Controller):
    """Last in the list: sees each step's stats after every neuro controller has published into them."""

    def __init__(self):
        self.stats, self.jit_state = [], []

    def on_step(self, learner, stats):
        trainer = learner._trainers["default"]
        self.stats.append(dict(stats, opt_lr=float(trainer.opt.lr.numpy()[0]), next_lr=learner.learning_rate,
                               scales=lr_scales(learner)))
        self.jit_state.append((trainer.jit.cnt, id(trainer.jit.captured)))


def test_all_controllers_on_a_real_learner():
    model = Transformer(ModelConfig(vocab_size=300, d_model=32, num_layers=1, num_query_heads=2, num_kv_heads=1,
                                    d_ff=64, max_seq_len=16))
    ctls = [Hippocampus(), AutonomousLR(), Neuromodulation(), Homeostasis(model),
            Sleep(SleepConfig(num_replay_cycles=2))]
    spy = Spy()
    config = LearnerConfig(strategy="lora+replay+ewc", batch_size=4, seq_len=16, min_steps=6, fisher_samples=4)
    learner = ContinualLearner(model, Tokenizer(), config, controllers=[*ctls, spy])
    learner.remember("The base text the model knew before. " * 4, domain="base")
    learner.learn_stream([("prose", "A short story about a cat and a hat. " * 3),
                          ("code", "def add(a, b):\n    return a + b\n" * 3)])
    steps = spy.stats
    assert len(steps) == 12
    for s in steps:        # the optimizer's lr Tensor held the learner's rate (warmed up and decayed within the call)
        assert s["opt_lr"] == pytest.approx(s["lr_now"], rel=1e-6)   # the rate times the schedule's factor
        assert s["next_lr"] == pytest.approx(learner.config.lr * s["scales"]["autonomous_lr"] * s["scales"]["dopamine"])
    for prev, s in itertools.pairwise(steps):
        assert s["lr"] == prev["next_lr"]
    assert len({round(s["lr"], 12) for s in steps}) > 3                         # and it really moves
    captured = {cid for cnt, cid in spy.jit_state if cnt >= 3}                  # TinyJit captures at call 2
    assert len(captured) == 1, "the learning rate change must not recapture the jitted step"
    assert all(np.isfinite(s["loss"]) for s in steps)
    last = steps[-1]
    for key in ("autonomous_lr.f_metabolic", "neuromod.dopamine", "neuromod.serotonin", "neuromod.temperature",
                "homeostasis.dead_fraction", "hippocampus.recall_similarity", "sleep.connections_pruned"):
        assert key in last, key
    assert ctls[0].recalls > 0                                                  # the hippocampus chose the replay
    assert ctls[2].counts["tagged"] > 0                                         # ACh tagged what was stored
    assert ctls[3].probes > 0
    assert ctls[4].sleeps == 2 and ctls[4].totals["connections_strengthened"] > 0 and \
        ctls[4].totals["connections_pruned"] > 0


def test_an_interrupted_run_resumes_where_it_was(tmp_path):
    """Save after the first domain, load with freshly built controllers: the second domain runs step for step as in
    the uninterrupted learner (same losses, learning rates, replay ratios and controller readouts)."""
    def build(model):   # a function of the model: Homeostasis must be built on the loaded one
        return [Hippocampus(), AutonomousLR(), Neuromodulation(), Homeostasis(model),
                Sleep(SleepConfig(num_replay_cycles=2))]

    class Record(Controller):
        def __init__(self):
            self.stats = []

        def on_step(self, learner, stats):
            self.stats.append({k: v for k, v in stats.items() if k not in ("tokens_per_s", "eta_s")})

    model = Transformer(ModelConfig(vocab_size=300, d_model=32, num_layers=1, num_query_heads=2, num_kv_heads=1,
                                    d_ff=64, max_seq_len=16))
    config = LearnerConfig(strategy="lora+replay+ewc", batch_size=4, seq_len=16, min_steps=5, fisher_samples=4)
    learner = ContinualLearner(model, Tokenizer(), config, controllers=build(model))
    learner.remember("The base text the model knew before. " * 4, domain="base")
    learner.learn_stream([("prose", "A short story about a cat and a hat. " * 3)])
    learner.save_checkpoint(tmp_path / "ckpt")
    again = ContinualLearner.load_checkpoint(tmp_path / "ckpt", controllers=build)
    runs = []
    for lrn in (learner, again):
        lrn.controllers.append(Record())
        lrn.learn_stream([("code", "def add(a, b):\n    return a + b\n" * 3)])
        runs.append(lrn.controllers[-1].stats)
    assert len(runs[0]) == len(runs[1]) == 5
    for a, b in zip(*runs):
        assert a.keys() == b.keys()
        for k in a:
            assert a[k] == b[k] or (isinstance(a[k], float) and np.isnan(a[k]) and np.isnan(b[k])), (k, a[k], b[k])
    assert {c.name: c.readout()["sleeps"] for c in again.controllers[4:5]} == {"sleep": 2.0}
