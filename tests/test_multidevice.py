"""Tests for data parallelism (minimac/parallel.py) on two CPU devices: TrainConfig(devices=2) computes what one
device computes with the same global batch, checkpoints move between device counts, and bad requests are refused
before any training. Two CPU devices need two cores (tinygrad opens "CPU:1" anyway; minimac refuses more devices than
cores)."""
import os
import re

import numpy as np
import pytest
from tinygrad import Device, Tensor

from minimac import parallel
from minimac.device_inputs import DeviceInputs, write_into
from minimac.learner.strategies import LearnerConfig
from minimac.model import ModelConfig, Transformer
from minimac.train import TrainConfig, Trainer

pytestmark = pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="two CPU devices need two cores")

B, T, V = 4, 16, 64
TINY = {"vocab_size": V, "d_model": 32, "num_layers": 1, "num_query_heads": 2, "num_kv_heads": 1, "d_ff": 64,
        "max_seq_len": T}
TWO = ("CPU:0", "CPU:1")


def tiny_model(seed: int = 0, **overrides) -> Transformer:
    Tensor.manual_seed(seed)
    return Transformer(ModelConfig(**{**TINY, **overrides}))


def batches(step: int) -> np.ndarray:
    return np.random.default_rng([7, step]).integers(0, V, (B, T + 1)).astype(np.int32)


def config(devices, **kw) -> TrainConfig:
    return TrainConfig(**{"batch_size": B, "seq_len": T, "lr": 1e-2, "min_lr": 1e-3, "warmup_steps": 1,
                          "max_steps": 3, "eval_every": 0, "ckpt_every": 0, "devices": devices, **kw})


def on_one_device(model: Transformer) -> dict[str, np.ndarray]:
    return {k: v.numpy() for k, v in model.state_dict().items()}


# ---- placement (no training: fast) --------------------------------------------------------------------------------
def test_resolve_devices_names_the_default_backend_and_canonicalises():
    from minimac.fast.devices import capabilities
    assert parallel.resolve_devices(1) == (Device.DEFAULT,)
    assert parallel.resolve_devices(TWO) == ("CPU", "CPU:1")
    assert capabilities(("CPU", "CPU:1")) == capabilities("CPU")   # the fast path's row for a replicated tensor


def test_device_inputs_cut_rows_across_devices_and_refill_in_place():
    inputs = DeviceInputs(parallel.resolve_devices(TWO))
    a = np.arange(8, dtype=np.int32).reshape(4, 2)
    (x,) = inputs(a)
    assert x.device == ("CPU", "CPU:1") and x.uop.axis == 0
    (x2,) = inputs(a + 100)
    assert x2 is x
    np.testing.assert_array_equal(x.numpy(), a + 100)
    np.testing.assert_array_equal(x.to("CPU:1").numpy(), a + 100)   # gathered from both devices' halves
    lr = Tensor([0.5]).to(("CPU", "CPU:1")).realize()                 # replicated: each device gets the value
    write_into(lr, np.array([0.25], dtype=np.float32))
    assert [float(b.numpy()[0]) for b in lr.uop.buffer.bufs] == [0.25, 0.25]


def test_a_replicated_model_gives_the_same_logits_on_one_device_inputs():
    model = tiny_model()
    ids = np.random.default_rng(0).integers(0, V, (4, T))
    pad = np.ones((4, T), dtype=np.int32)
    pad[1, :3] = 0                                # a padding mask travels with its rows
    want = model(ids, attention_mask=pad).numpy()
    parallel.replicate(model, parallel.resolve_devices(TWO))
    assert model.token_embedding.weight.device == ("CPU", "CPU:1") and model.rope.cos.device == ("CPU", "CPU:1")
    got = model(ids, attention_mask=pad)          # rows split across the devices, logits back on the default one
    assert got.device == Device.DEFAULT
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-5, atol=1e-5)
    parallel.gather(model)
    assert model.token_embedding.weight.device == Device.DEFAULT and model.rope.sin.device == Device.DEFAULT
    assert model.lm_head.weight is model.token_embedding.weight   # still tied


# ---- refusals, before any training ---------------------------------------------------------------------------------
def test_a_batch_size_that_the_devices_do_not_divide_is_refused():
    with pytest.raises(ValueError, match=r"batch_size 3 is not divisible by devices=2"):
        TrainConfig(batch_size=3, devices=2)
    with pytest.raises(ValueError, match=r"batch_size 5 is not divisible by devices=2"):
        TrainConfig(batch_size=5, devices=TWO)
    with pytest.raises(ValueError, match=r"devices must be a positive number"):
        TrainConfig(devices=0)
    with pytest.raises(ValueError, match=r"batch_size 3 is not divisible by devices=2"):
        LearnerConfig(strategy="full", batch_size=3, devices=2)


def test_more_devices_than_the_machine_has_is_refused_and_the_model_stays_put():
    too_many = (os.cpu_count() or 1) + 1
    with pytest.raises(ValueError, match=rf"{too_many} devices asked for, but this machine has {os.cpu_count()} CPU"):
        parallel.resolve_devices(too_many)
    model = tiny_model()
    with pytest.raises(ValueError, match="devices asked for"):
        Trainer(model, config(too_many, batch_size=too_many), batches)
    assert model.token_embedding.weight.device == Device.DEFAULT
    with pytest.raises(ValueError, match="names a device twice"):
        parallel.resolve_devices(("CPU:0", "CPU"))
    from minimac.learner import ContinualLearner
    from minimac.tokenizer import Tokenizer
    with pytest.raises(ValueError, match="devices asked for"):
        ContinualLearner(tiny_model(vocab_size=300), Tokenizer(),
                         LearnerConfig(strategy="full", batch_size=too_many, seq_len=T, devices=too_many))


@pytest.mark.parametrize("strategy", ["full+replay+ewc", "lora", "lora+replay", "adapter-per-domain"])
def test_the_learner_refuses_several_devices_where_its_state_lives_on_one(strategy):
    with pytest.raises(ValueError, match=re.escape(f"strategy '{strategy}' runs on one device; several devices are "
                                                   "supported for full fine-tuning only")):
        LearnerConfig(strategy=strategy, devices=2)
    assert LearnerConfig(strategy="full+replay", devices=2).devices == 2


def test_the_cli_refuses_bad_devices_before_training_a_tokenizer(tmp_path):
    from minimac.pretrain import main
    base = ["--corpus", str(tmp_path / "never-read.txt"), "--out", str(tmp_path / "run"), "--no-live"]
    with pytest.raises(ValueError, match=r"batch_size 3 is not divisible by the 2 devices"):
        main([*base, "--batch-size", "3", "--devices", "2"])
    with pytest.raises(ValueError, match=r"devices asked for"):
        main([*base, "--devices", str((os.cpu_count() or 1) + 1)])
    assert not (tmp_path / "run").exists()


# ---- training: two devices compute what one computes (each test compiles two training steps: 30-60 s here) -------
@pytest.mark.slow
def test_two_devices_give_the_losses_and_weights_of_one_with_the_same_global_batch():
    runs = {}
    for devices in (1, TWO):
        model = tiny_model()
        trainer = Trainer(model, config(devices), batches)
        assert trainer.fit() == "done"
        runs[devices] = (trainer.history, on_one_device(model), trainer)
    (h1, w1, _), (h2, w2, two) = runs[1], runs[TWO]
    assert two.devices == ("CPU", "CPU:1") and two.optimizers[0].m[0].device == ("CPU", "CPU:1")
    np.testing.assert_allclose([h["loss"] for h in h2], [h["loss"] for h in h1], rtol=1e-5)
    np.testing.assert_allclose([h["grad_norm"] for h in h2], [h["grad_norm"] for h in h1], rtol=1e-4)
    assert h1[-1]["loss"] != h1[0]["loss"]        # the weights did move
    # AdamW divides by sqrt(v): for a gradient entry near 0 the sums' other order can move its update by a little of
    # lr (1e-2), so the weights agree to 1e-5, not to float32's last bit
    for k in w1:
        np.testing.assert_allclose(w2[k], w1[k], rtol=1e-4, atol=2e-5, err_msg=k)


@pytest.mark.slow
def test_a_checkpoint_moves_between_device_counts_with_the_same_logits(tmp_path):
    """Written on 2 devices, loaded on 1 (same logits, training goes on), written on 1, loaded on 2."""
    ids = batches(99)[:, :T]
    two = tiny_model()
    Trainer(two, config(TWO, max_steps=2), batches, out_dir=tmp_path / "two").fit()
    one = tiny_model(seed=5)
    trainer = Trainer(one, config(1), batches, out_dir=tmp_path / "one")
    assert trainer.load(tmp_path / "two")["train_config"]["devices"] == ["CPU:0", "CPU:1"]
    np.testing.assert_allclose(one(ids).numpy(), two(ids).numpy(), rtol=1e-6, atol=1e-6)
    assert trainer.fit() == "done" and trainer.step == 3
    again = tiny_model(seed=6)
    Trainer(again, config(TWO), batches).load(tmp_path / "one")
    assert again.token_embedding.weight.device == ("CPU", "CPU:1")
    np.testing.assert_allclose(again(ids).numpy(), one(ids).numpy(), rtol=1e-6, atol=1e-6)


@pytest.mark.slow
def test_the_learners_full_fine_tuning_on_two_devices_matches_one():
    from minimac.learner import ContinualLearner
    from minimac.tokenizer import Tokenizer
    text = "def double(x):\n    return x * 2\n\n" * 6
    results = {}
    for devices in (1, 2):
        model = tiny_model(vocab_size=300)   # the byte-level tokenizer's 257 ids
        learner = ContinualLearner(model, Tokenizer(), LearnerConfig(strategy="full+replay", batch_size=4, seq_len=T,
                                                                     learning_rate=1e-2, devices=devices))
        stats = learner.learn_from_text(text, "code", steps=3)
        results[devices] = stats, model([learner.encode("def double")]).numpy()
    (s1, logits1), (s2, logits2) = results[1], results[2]
    assert model.token_embedding.weight.device == ("CPU", "CPU:1")
    assert s1["loss_after"] < s1["loss_before"]
    np.testing.assert_allclose([s2["loss_before"], s2["loss_after"]], [s1["loss_before"], s1["loss_after"]],
                               rtol=1e-5)
    np.testing.assert_allclose(logits2, logits1, rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_the_cli_pretrains_on_two_devices_and_resumes_on_one(tmp_path, monkeypatch):
    import json

    import minimac.model
    from minimac.pretrain import main
    from minimac.train import read_checkpoint_meta
    monkeypatch.setitem(minimac.model.PRESETS, "nano", {**TINY, "vocab_size": 300, "max_seq_len": 32})
    words = np.random.default_rng(0).choice(["the", "cat", "sat", "on", "a", "mat", "and", "ran"], (60, 40))
    corpus = tmp_path / "story.txt"
    corpus.write_text("\n\n".join(" ".join(row) + "." for row in words))
    common = ["--batch-size", "2", "--seq-len", "16", "--vocab-size", "300", "--no-live", "--sample-tokens", "4",
              "--eval-every", "2"]
    out = tmp_path / "run"
    assert main([*common, "--corpus", str(corpus), "--steps", "3", "--out", str(out), "--devices", "2"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["devices"] == ["CPU", "CPU:1"] and metrics["steps"] == 3
    assert main(["--resume", str(out), "--steps", "4", "--no-live", "--sample-tokens", "0", "--devices", "1"]) == 0
    assert read_checkpoint_meta(out)["step"] == 4 and read_checkpoint_meta(out)["train_config"]["devices"] == 1
    assert json.loads((out / "metrics.json").read_text())["devices"] == ["CPU"]
