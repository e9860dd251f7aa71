"""Controller state in learner checkpoints (minimac/learner/checkpoint.py + each controller's state_dict): every running
average, counter, RNG state and memory comes back, so an interrupted run resumes where it was. Fast: the
controllers are driven directly (no training step is compiled); tests/test_neuro_learner.py resumes a real run."""
import json
import math

import numpy as np
import pytest
from tinygrad import Tensor

from minimac.learner import ContinualLearner
from minimac.learner.checkpoint import CONTROLLERS, META
from minimac.learner.strategies import LearnerConfig
from minimac.model import ModelConfig, Transformer
from minimac.neuro import (
    AutonomousLR,
    Hippocampus,
    HippocampusConfig,
    Homeostasis,
    HomeostasisConfig,
    Neuromodulation,
    Sleep,
    SleepConfig,
    lr_scales,
)
from minimac.tokenizer import Tokenizer


def fresh(model) -> list:
    return [Hippocampus(HippocampusConfig(encode_rows=4)), AutonomousLR(), Neuromodulation(),
            Homeostasis(model, HomeostasisConfig(probe_every=1, probe_rows=2)), Sleep(SleepConfig(num_replay_cycles=1,
                                                                                                 dream_rows=2))]


def same(a, b) -> bool:
    """Deep equality with NaN == NaN, arrays by value, tuples == lists (JSON)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return np.array_equal(np.asarray(a), np.asarray(b), equal_nan=True)
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a):
        return math.isnan(b)
    return a == b


@pytest.fixture(scope="module")
def driven(tmp_path_factory):
    """A learner whose five controllers have all moved (fed fake step stats), saved to a folder."""
    Tensor.manual_seed(0)
    model = Transformer(ModelConfig(vocab_size=300, d_model=32, num_layers=1, num_query_heads=2, num_kv_heads=1,
                                    d_ff=64, max_seq_len=16))
    ctls = fresh(model)
    learner = ContinualLearner(model, Tokenizer(), LearnerConfig(strategy="lora+replay+ewc", batch_size=4,
                                                                 seq_len=16), controllers=ctls)
    learner.remember("The base text the model knew before. " * 4, domain="base")
    learner.remember("def add(a, b):\n    return a + b\n" * 3, domain="code")
    for k, loss in enumerate([5.0, 4.6, 4.9, 4.1]):
        stats = {"step": k + 1, "global_step": k + 1, "loss": loss, "ewc": 0.01, "grad_norm": 1.0 + k / 10}
        for c in ctls:
            c.on_step(learner, stats)
    new = [learner.encode("A short story about a cat.")]
    assert ctls[0].select_replay(learner, 2, new=new) is not None      # codes and a cue are stored, rng moved
    ctls[4].on_domain_end(learner, "code")                             # a sleep: counts and rng move
    folder = tmp_path_factory.mktemp("neuro") / "ckpt"
    learner.save_checkpoint(folder)
    return learner, ctls, folder


def test_every_controller_state_round_trips(driven):
    learner, ctls, folder = driven
    again = ContinualLearner.load_checkpoint(folder, controllers=fresh)   # built on the loaded model
    assert [c.name for c in again.controllers] == [c.name for c in ctls]
    for old, new in zip(ctls, again.controllers):
        assert old.state_dict(), old.name                                # each one has something to keep
        assert same(old.state_dict(), new.state_dict()), old.name
        assert same(old.readout(), new.readout()), old.name
    assert ctls[0].readout()["episodes"] > 0 and ctls[2].serotonin != 0.5 and ctls[4].sleeps == 1
    assert ctls[3].probes == 4 and not np.allclose(ctls[3].gain, 1.0)
    hom = again.controllers[3]                                           # gain and threshold are in the model again
    np.testing.assert_allclose(hom.ffns[0].units.gain.numpy(), ctls[3].gain[0], rtol=1e-6)
    np.testing.assert_allclose(hom.ffns[0].units.threshold.numpy(), ctls[3].threshold[0], rtol=1e-6, atol=1e-7)
    assert lr_scales(again) == lr_scales(learner) and set(lr_scales(again)) == {"autonomous_lr", "dopamine"}
    assert (again.learning_rate, again.replay_ratio, again.ewc_lambda) == \
        (learner.learning_rate, learner.replay_ratio, learner.ewc_lambda)
    for old, new in zip(ctls, again.controllers):                        # the same random draws from here on
        if hasattr(old, "rng"):
            assert old.rng.integers(1 << 30) == new.rng.integers(1 << 30), old.name
    meta = json.loads((folder / META).read_text())
    assert set(meta["controllers"]) == {"hippocampus", "autonomous_lr", "neuromod", "homeostasis", "sleep"}
    assert (folder / CONTROLLERS).is_file()


def test_resuming_without_controllers_or_with_some(driven):
    _, ctls, folder = driven
    assert ContinualLearner.load_checkpoint(folder).controllers == []    # saved states are simply left unused
    again = ContinualLearner.load_checkpoint(folder, controllers=[Sleep()])
    assert again.controllers[0].sleeps == 1 and same(again.controllers[0].totals, ctls[4].totals)


def test_mismatched_controllers_are_refused_clearly(driven):
    learner, _, folder = driven
    with pytest.raises(ValueError, match="'homeostasis' was built on another model"):
        ContinualLearner.load_checkpoint(folder, controllers=[Homeostasis(Transformer(learner.model.config))])

    class Impostor(Sleep):
        pass

    with pytest.raises(ValueError, match="state for a Sleep named 'sleep', not for the Impostor"):
        ContinualLearner.load_checkpoint(folder, controllers=[Impostor()])
