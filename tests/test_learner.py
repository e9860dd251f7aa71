"""ContinualLearner (minimac/learner/learner.py and its helpers: strategies, mixing, learner_step, routing, checkpoint_io).

Models are tiny (d_model 32, one layer, the 257-id byte tokenizer) so the whole file runs in about a minute on a
2-core CPU; most of that is compiling the jitted step once. The embedding is scaled to std 0.2: with N(0, 0.02)
embeddings and tied weights the logits of an untrained model stay within about +-0.6, too flat for any adapter to
make one sentence likely, while a trained model's are not (this stands in for pretraining).
"""
import itertools
import json
import math
import re
import shutil

import numpy as np
import pytest
from tinygrad import Tensor
from tinygrad.nn.state import get_state_dict, load_state_dict

import minimac.learner.learner as learner_mod
from minimac import lora
from minimac.checkpoint import load as load_model
from minimac.learner import ContinualLearner
from minimac.learner.checkpoint import META, TRAINERS
from minimac.learner.hooks import Controller
from minimac.learner.mixing import chunk_ids, mixed_batch, new_chunk_schedule
from minimac.learner.strategies import STRATEGIES, LearnerConfig
from minimac.model import ModelConfig, Transformer
from minimac.replay import Experience
from minimac.tokenizer import Tokenizer
from minimac.train import NonFiniteLossError, cross_entropy

TINY = {"vocab_size": 300, "d_model": 32, "num_layers": 1, "num_query_heads": 2, "num_kv_heads": 1, "d_ff": 64,
        "max_seq_len": 32}
FACT = "The capital of Zorbia is Quixville."
PROSE = "the cat sat on the mat and looked at the dog. " * 6
CODE = "def double(x):\n    return x * 2\n\n" * 6
MATH = "12 + 30 = 42. 7 * 6 = 42. 84 / 2 = 42. " * 5


def tiny_model(seed: int = 0) -> Transformer:
    Tensor.manual_seed(seed)
    model = Transformer(ModelConfig(**TINY))
    model.token_embedding.weight.assign(model.token_embedding.weight * 10).realize()
    return model


def config(**kw) -> LearnerConfig:
    return LearnerConfig(**{"batch_size": 4, "seq_len": 16, "min_steps": 10, "learning_rate": 1e-2,
                            "fisher_samples": 8, "ewc_lambda": 1.0, **kw})


def make(strategy: str = "lora", seed: int = 0, **kw) -> ContinualLearner:
    return ContinualLearner(tiny_model(seed), Tokenizer(), config(strategy=strategy, **kw))


@pytest.fixture(scope="module")
def streamed():
    """A lora+replay+ewc learner that remembered a base text, then learned two domains with an R matrix."""
    learner = make("lora+replay+ewc")
    learner.remember(PROSE, "prose")
    learner.consolidate("prose")
    learner.learn_stream([("code", CODE), ("math", MATH)], eval_sets={"prose": PROSE, "code": CODE, "math": MATH})
    return learner


@pytest.fixture(scope="module")
def per_domain():
    learner = make("adapter-per-domain")
    learner.learn_stream([("prose", PROSE), ("code", CODE), ("math", MATH)], steps=25)
    return learner


def logits(learner: ContinualLearner, text: str = "def double") -> np.ndarray:
    return learner.model([learner.encode(text)]).numpy()


# ---- config, chunking and batches (host side, fast) ---------------------------------------------------------------
def test_unknown_strategy_lists_the_choices():
    with pytest.raises(ValueError, match=re.escape("unknown strategy 'lora+magic'; choose one of: full, full+replay, full+replay+ewc, lora, lora+")):
        LearnerConfig(strategy="lora+magic")


@pytest.mark.parametrize("field, value", [("r", 0), ("replay_ratio", 1.5), ("learning_rate", -1e-3),
                                          ("batch_size", 0), ("seq_len", 2.5), ("mode", "sometimes"),
                                          ("max_grad_norm", 0.0), ("epochs", 0), ("policy", "fifo"),
                                          ("target_modules", ()), ("decay_factor", 2.0)])
def test_bad_config_values_name_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        LearnerConfig(**{field: value})


def test_strategy_table_and_learning_rate_defaults():
    # full, full+replay, full+replay+ewc, lora, lora+replay, lora+replay+ewc, adapter-per-domain
    assert [LearnerConfig(strategy=s).uses_lora for s in STRATEGIES] == [False] * 3 + [True] * 4
    assert [LearnerConfig(strategy=s).uses_replay for s in STRATEGIES] == [False, True, True, False, True, True, False]
    assert [LearnerConfig(strategy=s).uses_ewc for s in STRATEGIES] == [False, False, True, False, False, True, False]
    assert LearnerConfig(strategy="full+replay+ewc").lr == LearnerConfig(strategy="full").lr
    assert LearnerConfig(strategy="full").lr < LearnerConfig(strategy="lora").lr
    assert LearnerConfig(strategy="lora", learning_rate=0.5).lr == 0.5
    assert LearnerConfig.from_dict(LearnerConfig(strategy="lora", r=4).to_dict()) == LearnerConfig(strategy="lora", r=4)


def test_default_steps_rule():
    c = LearnerConfig(strategy="lora+replay", batch_size=8, min_steps=30, epochs=1)
    assert c.replay_rows() == 4 and LearnerConfig(strategy="lora").replay_rows() == 0
    assert c.default_steps(1) == 30                      # one sentence: min_steps
    assert c.default_steps(1000) == 250                  # 1000 chunks, 4 new rows a step
    assert c.default_steps(1000, epochs=2, replay_ratio=0.0) == 250
    assert LearnerConfig(strategy="lora+replay", batch_size=8, replay_ratio=1.0).replay_rows() == 7  # one row stays new


def test_chunks_cover_every_target_once():
    ids = list(range(100))
    chunks = chunk_ids(ids, seq_len=16)
    assert all(2 <= len(c) <= 17 for c in chunks)
    targets = np.concatenate([c[1:] for c in chunks])
    np.testing.assert_array_equal(targets, ids[1:])
    with pytest.raises(ValueError, match="too short"):
        chunk_ids([5], 16)


def test_schedule_uses_distinct_chunks_and_covers_them():
    sched = new_chunk_schedule(10, rows=4, steps=5, rng=np.random.default_rng(0))
    assert all(len(set(s)) == 4 for s in sched)
    assert set(np.concatenate(sched[:3])) == set(range(10))   # one pass in ceil(10 / 4) steps
    assert new_chunk_schedule(1, rows=4, steps=3, rng=np.random.default_rng(0)) == [[0], [0], [0]]


def test_mixed_batch_weights_give_replay_its_share():
    new, old = [np.arange(1, 6)], [np.arange(10, 27), np.arange(30, 40)]   # 4 new targets, 16 + 9 replayed
    x, y, w = mixed_batch(new, old, batch_size=4, seq_len=16, replay_ratio=0.25)
    assert x.shape == y.shape == w.shape == (4, 16)
    np.testing.assert_array_equal(y[0, :4], [2, 3, 4, 5])    # shifted once
    np.testing.assert_array_equal(x[0, :4], [1, 2, 3, 4])
    assert (y[3] == -1).all() and (w[3] == 0).all() and (w[y == -1] == 0).all()
    np.testing.assert_allclose([w[0].sum(), w[1:].sum(), w.sum()], [0.75, 0.25, 1.0], rtol=1e-6)


def test_weighted_cross_entropy_matches_cross_entropy_and_numpy():
    rng = np.random.default_rng(0)
    logits_np = rng.normal(size=(2, 5, 7)).astype(np.float32)
    y = rng.integers(0, 7, (2, 5)).astype(np.int32)
    y[1, 3:] = -1
    w = (y != -1) / (y != -1).sum()
    got = cross_entropy(Tensor(logits_np), Tensor(y), weights=Tensor(w.astype(np.float32))).item()
    ref = cross_entropy(Tensor(logits_np), Tensor(y)).item()
    z = logits_np.astype(np.float64)
    lse = np.log(np.exp(z - z.max(-1, keepdims=True)).sum(-1)) + z.max(-1)
    nll = lse - np.take_along_axis(z, np.maximum(y, 0)[..., None], -1)[..., 0]
    np.testing.assert_allclose([got, ref], [(nll * w).sum()] * 2, rtol=1e-5, atol=1e-5)


# ---- learning -------------------------------------------------------------------------------------------------------
def test_each_learning_rate_reaches_the_jitted_step():
    """set_lr skips the write when the value is unchanged; a changed value (here 0 -> 1e-2 -> 0) must still land."""
    learner = make("lora")
    trainer = learner._trainer_for("d")
    x, y, w = mixed_batch([np.arange(17) % 50] * 4, [], 4, 16, 0.0)

    def snapshot():
        return [p.numpy().copy() for p in trainer.params]
    moved = []
    for lr in (0.0, 0.0, 1e-2, 1e-2, 0.0):
        before = snapshot()
        trainer.step(x, y, w, lr)
        moved.append(any(not np.array_equal(a, b) for a, b in zip(before, snapshot())))
    assert moved == [False, False, True, True, False]


def test_one_sentence_is_learned_in_a_few_seconds():
    learner = make("lora")
    out = learner.learn_from_text(FACT, domain="facts", steps=30)
    assert out["loss_after"] < 0.5 * out["loss_before"], out
    assert out["steps"] == 30 and out["examples"] == 3 and out["tokens"] == len(FACT.encode())
    assert learner.history[-1] is out and learner.step_count == 30


@pytest.mark.parametrize("strategy", ["lora", "full", "full+replay+ewc"])
def test_one_step_changes_only_the_trainable_tensors(strategy):
    learner = make(strategy)
    full = strategy.startswith("full")
    if full:
        assert not lora.adapter_names(learner.model)  # no adapter is injected for the full strategies
    learner.learn_from_text(FACT, steps=1)   # builds the trainer (and the adapter), one step
    trainable = {id(t) for t in learner._trainers[learner_mod.FULL if full else "default"].params}
    state = get_state_dict(learner.model)
    before = {k: v.numpy().copy() for k, v in state.items()}
    learner.learn_from_text(FACT, steps=1)
    changed = {k for k, v in state.items() if not np.array_equal(before[k], v.numpy())}
    if full:
        assert changed == set(state), f"full fine-tuning left {set(state) - changed} unchanged"
    else:
        assert changed and all(id(state[k]) in trainable for k in changed), changed
        assert all(".lora_" in k for k in changed) and any(".lora_B." in k for k in changed)


@pytest.mark.parametrize("strategy", ["lora+replay", "full+replay"])
def test_new_text_is_in_every_batch_and_replay_gets_its_ratio(monkeypatch, strategy):
    calls, cues = [], []

    def spy(new, replay, *args):
        calls.append(([np.asarray(c).copy() for c in new], [np.asarray(c).copy() for c in replay], args))
        return mixed_batch(new, replay, *args)

    class Cue(Controller):      # a replay selector that only looks at the cue, then keeps the default draw
        def select_replay(self, learner, n, new=None):
            cues.append([np.asarray(c).copy() for c in new])

    monkeypatch.setattr(learner_mod, "mixed_batch", spy)
    learner = make(strategy, replay_ratio=0.5)
    learner.remember(PROSE, "prose")
    learner.remember(MATH, "math")
    learner.controllers.append(Cue())
    fact_chunks = chunk_ids(learner.encode(FACT), 16)
    learner.learn_from_text(FACT, domain="facts", steps=6)
    assert len(calls) == 6
    for cue, (new, _, _) in zip(cues, calls, strict=True):    # select_replay saw the step's new chunks
        assert len(cue) == len(new) and all(np.array_equal(a, b) for a, b in zip(cue, new))
    for new, replay, (batch_size, seq_len, ratio) in calls:
        assert new and all(any(np.array_equal(c, f) for f in fact_chunks) for c in new)
        assert len(replay) == 2 and ratio == 0.5                  # round(4 * 0.5) rows of the batch of 4
    domains = {e.domain for e in learner.replay.experiences if any(np.array_equal(e.input_ids, r)
                                                                   for _, rs, _ in calls for r in rs)}
    assert domains == {"prose", "math"}                          # balanced draw: both earlier domains replayed
    calls.clear()
    learner.set_replay_ratio(0.25)
    learner.learn_from_text(FACT, domain="facts", steps=2)
    assert [len(r) for _, r, _ in calls] == [1, 1]


def test_controllers_set_the_learning_rate_and_choose_replay():
    seen = []

    class Halve(Controller):
        def on_step(self, learner, stats):
            seen.append(stats["lr"])
            learner.set_learning_rate(stats["lr"] / 2)

        def select_replay(self, learner, n, new=None):
            return [Experience(learner.encode("chosen by the controller"), domain="picked")] * n

    learner = make("lora+replay")
    learner.remember(PROSE, "prose")
    learner.controllers.append(Halve())
    learner.learn_from_text(FACT, steps=3)
    assert seen == [1e-2, 5e-3, 2.5e-3]
    with pytest.raises(ValueError, match="learning rate"):
        learner.set_learning_rate(float("nan"))


def test_nan_loss_restores_the_weights_and_raises():
    class Poison(Controller):
        def on_step(self, learner, stats):   # a frozen base weight goes nan after the first step
            w = learner.model.layers[0].feed_forward.w2.base_layer.weight
            w.assign(w * float("nan")).realize()

    learner = make("lora")
    learner.learn_from_text(FACT, steps=2)
    trainer = learner._trainers["default"]
    before = [t.numpy().copy() for t in trainer.state()]
    learner.controllers.append(Poison())
    with pytest.raises(NonFiniteLossError, match="restored"):
        learner.learn_from_text(FACT, steps=3)
    for t, b in zip(trainer.state(), before):
        np.testing.assert_array_equal(t.numpy(), b)


@pytest.mark.parametrize("call, error, message", [
    (lambda L: L.learn_from_text(42), TypeError, "text must be a str, got int"),
    (lambda L: L.learn_from_text(""), ValueError, "empty"),
    (lambda L: L.learn_from_text(" \n "), ValueError, "empty"),
    (lambda L: L.learn_from_text(FACT, domain=""), ValueError, "domain"),
    (lambda L: L.learn_from_text(FACT, importance=-1.0), ValueError, "importance"),
    (lambda L: L.learn_from_text(FACT, steps=0), ValueError, "steps"),
    (lambda L: L.learn_from_text(FACT, epochs=-1), ValueError, "epochs"),
    (lambda L: L.evaluate({}), TypeError, "non-empty dict"),
    (lambda L: L.generate(7), TypeError, "prompt must be a str"),
    (lambda L: L.learn_stream([("a", FACT), ("b", FACT), ("a", FACT)]), ValueError, "revisits"),
    (lambda L: L.learn_stream([("a", FACT)], eval_sets={"b": FACT}), ValueError, "every stream domain"),
    (lambda L: L.learn_stream([42]), TypeError, "domain, text"),
    (lambda L: L.consolidate("never-seen"), ValueError, "unknown domain"),
])
def test_bad_input_is_refused_with_a_clear_message(call, error, message):
    with pytest.raises(error, match=message):
        call(make("lora"))


def test_model_and_config_mismatches_are_refused():
    with pytest.raises(ValueError, match="max_seq_len"):
        ContinualLearner(tiny_model(), Tokenizer(), config(seq_len=64))
    with pytest.raises(TypeError, match="LearnerConfig"):
        ContinualLearner(tiny_model(), Tokenizer(), {"strategy": "lora"})
    with pytest.raises(ValueError, match="tokenizer has 257 ids but the model only 256"):
        ContinualLearner(Transformer(ModelConfig(**{**TINY, "vocab_size": 256})), Tokenizer(), config())


# ---- streams, R matrix, EWC ---------------------------------------------------------------------------------------
def test_stream_fills_the_r_matrix_and_consolidates(streamed):
    m = streamed.r_matrix
    assert m.stages == ["prose", "code", "math"] and m.sets == ["prose", "code", "math"]
    assert m.values.shape == (3, 3) and np.isfinite(m.values).all()
    assert m.values[1, 1] < m.values[0, 1] and m.values[2, 2] < m.values[1, 2]   # each stage learned its domain
    summary = m.summary()
    assert summary["average_forgetting"] >= 0 and math.isfinite(summary["backward_transfer"])
    assert [s["stage"] for s in streamed.stages] == ["prose", "code", "math"]
    ewc = streamed._trainers["default"].ewc
    assert ewc.num_experiences == 1 and ewc.mode == "online"      # prose, code, math folded into one running F
    assert set(streamed.replay.domain_counts()) == {"prose", "code", "math"}


def test_ewc_lambda_is_a_live_knob(streamed):
    streamed.set_ewc_lambda(3.0)
    assert streamed._trainers["default"].ewc.ewc_lambda == 3.0
    streamed.set_ewc_lambda(1.0)
    with pytest.raises(ValueError, match="ewc_lambda"):
        streamed.set_ewc_lambda(-1.0)


def test_full_replay_ewc_anchors_every_weight():
    """full+replay+ewc: the Fisher covers every weight (max 1 per tensor), and the next domain pays a penalty."""
    seen = []

    class Spy(Controller):
        def on_step(self, learner, stats):
            seen.append(stats["ewc"])

    learner = make("full+replay+ewc", ewc_lambda=10.0)
    learner.controllers.append(Spy())
    learner.learn_from_text(PROSE, domain="prose", steps=3)
    learner.consolidate("prose")
    trainer = learner._trainers[learner_mod.FULL]
    fisher, _ = trainer.ewc.experiences[0]
    assert len(fisher) == len(trainer.params) == len(learner.model.parameters())
    assert all(f.shape == tuple(p.shape) and f.max() == pytest.approx(1.0, abs=1e-3)
               for f, p in zip(fisher, trainer.params))
    learner.learn_from_text(MATH, domain="math", steps=3)
    assert seen[:3] == [0.0, 0.0, 0.0] and seen[4] > 0      # no penalty before the first consolidation; then one


# ---- adapter per domain -------------------------------------------------------------------------------------------
def test_adapter_per_domain_makes_one_adapter_per_domain(per_domain):
    assert per_domain.adapters == ["code", "math", "prose"]
    assert lora.active_adapter(per_domain.model) == "math"           # the last one trained


def test_router_picks_the_adapter_of_the_domain(per_domain):
    assert per_domain.route("def double(x):\n    return x") == "code"
    assert per_domain.route("12 + 30 = 42. 7 * 6") == "math"
    assert per_domain.route("the cat sat on the mat") == "prose"
    scores = per_domain.evaluate({"code": CODE, "unnamed": CODE})     # by name, and routed to code automatically
    assert scores["code"] == pytest.approx(scores["unnamed"])
    with pytest.raises(ValueError, match="unknown domain 'law' for routing"):
        per_domain.generate("x", domain="law")


def test_generation_by_name_uses_that_adapter(per_domain):
    code = per_domain.generate("def double(x):\n", 12, temperature=0, domain="code")
    assert isinstance(code, str) and code == per_domain.generate("def double(x):\n", 12, temperature=0)
    assert "".join(per_domain.stream("def double(x):\n", 12, temperature=0, domain="code")) == code


# ---- checkpoints ----------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def saved(streamed, tmp_path_factory):
    folder = tmp_path_factory.mktemp("learner") / "ckpt"
    streamed.save_checkpoint(folder)
    return folder


def copy(folder, tmp_path, name="ckpt"):
    return shutil.copytree(folder, tmp_path / name)


def test_checkpoint_round_trip_restores_everything(streamed, saved):
    again = ContinualLearner.load_checkpoint(saved)
    np.testing.assert_array_equal(logits(again), logits(streamed))
    assert again.config == streamed.config and again.step_count == streamed.step_count
    assert again.domains == streamed.domains and again.history == json.loads(json.dumps(streamed.history))
    np.testing.assert_array_equal(again.r_matrix.values, streamed.r_matrix.values)
    assert len(again.replay) == len(streamed.replay) and again.replay.domain_counts() == streamed.replay.domain_counts()
    a, b = again._trainer_for("code"), streamed._trainers["default"]
    for x, y in zip(a.state(), b.state()):          # LoRA tensors, AdamW moments and powers
        np.testing.assert_array_equal(x.numpy(), y.numpy())
    for k, v in b.ewc.state_dict().items():
        np.testing.assert_array_equal(a.ewc.state_dict()[k].numpy(), v.numpy())
    r1 = streamed.learn_from_text("x = 1\n", "code", steps=1)
    r2 = again.learn_from_text("x = 1\n", "code", steps=1)
    assert r1["loss_after"] == r2["loss_after"]     # same RNG, replay draws and optimizer state: same step


def test_checkpoint_exports_a_model_that_generate_can_load(saved):
    from minimac.generate import load_for_generation
    again = ContinualLearner.load_checkpoint(saved)
    model, _ = load_for_generation(saved)
    ids = [again.encode("def double")]
    np.testing.assert_allclose(model(ids).numpy(), again.model(ids).numpy(), rtol=1e-4, atol=1e-4)
    base = load_model(saved / "base")
    with lora.disable_adapters(again.model):
        np.testing.assert_array_equal(base(ids).numpy(), again.model(ids).numpy())


def test_an_interrupted_save_leaves_the_old_checkpoint(streamed, saved, tmp_path, monkeypatch):
    import minimac.learner.checkpoint as io
    folder = copy(saved, tmp_path)
    want = logits(ContinualLearner.load_checkpoint(folder))

    def crash(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(io.lora_files, "save_adapter", crash)   # after the base and the export are written
    with pytest.raises(KeyboardInterrupt):
        streamed.save_checkpoint(folder)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]            # the temp folder is gone
    np.testing.assert_array_equal(logits(ContinualLearner.load_checkpoint(folder)), want)
    folder.rename(tmp_path / "ckpt.previous")                                  # a crash between the two renames
    np.testing.assert_array_equal(logits(ContinualLearner.load_checkpoint(folder)), want)


def test_checkpoint_errors_name_the_file(streamed, saved, tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        ContinualLearner.load_checkpoint(tmp_path / "nowhere")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(FileNotFoundError, match="learner.json' is missing"):
        ContinualLearner.load_checkpoint(tmp_path / "other")
    with pytest.raises(ValueError, match="refusing to overwrite"):
        streamed.save_checkpoint(tmp_path / "other")
    (copy(saved, tmp_path, "a") / META).write_text("{not json")
    with pytest.raises(ValueError, match="learner.json' is corrupt"):
        ContinualLearner.load_checkpoint(tmp_path / "a")
    (copy(saved, tmp_path, "b") / TRAINERS).write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(ValueError, match="trainers.npz' is corrupt"):
        ContinualLearner.load_checkpoint(tmp_path / "b")
    (copy(saved, tmp_path, "c") / "base" / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="model.safetensors"):
        ContinualLearner.load_checkpoint(tmp_path / "c")
    (copy(saved, tmp_path, "d") / "replay.npz").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="replay.npz"):
        ContinualLearner.load_checkpoint(tmp_path / "d")
    meta = json.loads((copy(saved, tmp_path, "e") / META).read_text())
    del meta["step_count"]
    (tmp_path / "e" / META).write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="learner.json' is corrupt: it has no 'step_count'"):
        ContinualLearner.load_checkpoint(tmp_path / "e")


def test_state_dict_carries_the_learner_in_memory(streamed):
    """state_dict() / load_state_dict(): the learner's own state (what checkpoint.py writes beside the weights)."""
    state = streamed.state_dict()
    again = make("lora+replay+ewc")
    load_state_dict(again.model, get_state_dict(streamed.model))     # the weights (base and adapter) are the model's
    again.load_state_dict(state)
    np.testing.assert_array_equal(logits(again), logits(streamed))
    assert again.step_count == streamed.step_count and again.domains == streamed.domains
    assert again.replay.domain_counts() == streamed.replay.domain_counts()
    r1 = streamed.learn_from_text("y = 2\n", "code", steps=1)
    r2 = again.learn_from_text("y = 2\n", "code", steps=1)
    assert r1["loss_after"] == r2["loss_after"]     # the same RNG, replay draws, AdamW moments and EWC anchors


def test_load_state_dict_refuses_state_of_another_model_before_changing_anything(streamed):
    state = streamed.state_dict()
    first = min(k for k in state["trainers"]["default"] if k.startswith("opt."))
    state["trainers"]["default"][first] = np.zeros((3, 3), np.float32)
    again = make("lora+replay+ewc")
    with pytest.raises(ValueError, match="trainer state does not fit this model: trainer 'default'.*first mismatch "
                                         r"at #0 \(\(3, 3\)"):
        again.load_state_dict(state)
    assert again.step_count == 0 and again.domains == [] and len(again.replay) == 0


# ---- the default recipe: schedule, early stopping, routing margin (minimac/learner/schedule.py, routing.py) -------
def test_default_is_adapter_per_domain_and_old_checkpoints_keep_their_recipe():
    from minimac.learn import DEFAULTS
    assert LearnerConfig().strategy == "adapter-per-domain" == DEFAULTS["strategy"]
    old = {k: v for k, v in LearnerConfig(strategy="lora").to_dict().items()
           if k not in ("use_rslora", "loraplus_lr_ratio", "lr_schedule", "warmup_ratio", "route_margin")}
    c = LearnerConfig.from_dict(old)        # saved before those fields existed: trained without them
    assert (c.use_rslora, c.loraplus_lr_ratio, c.lr_schedule, c.warmup_ratio, c.route_margin) == \
        (False, 1.0, "constant", 0.0, 0.0)


def test_lr_schedule_warms_up_then_decays():
    from minimac.learner.schedule import lr_factor
    f = [lr_factor(k, 20, "cosine", 0.1, 0.1) for k in range(20)]
    assert f[:3] == pytest.approx([1 / 3, 2 / 3, 1.0])                     # 2 warmup steps, then the peak
    assert all(a >= b for a, b in itertools.pairwise(f[2:])) and f[-1] == pytest.approx(0.1)
    assert lr_factor(10, 21, "linear", 0.0, 0.0) == pytest.approx(0.5)
    assert {lr_factor(k, 20) for k in range(20)} == {1.0}                  # constant, no warmup


def test_each_step_gets_the_scheduled_rate():
    rates = []

    class Spy(Controller):
        def on_step(self, learner, stats):
            rates.append((stats["lr"], stats["lr_now"]))

    learner = make("lora", lr_schedule="linear", warmup_ratio=0.0, min_lr_ratio=0.0)
    learner.controllers.append(Spy())
    learner.learn_from_text(FACT, steps=5)
    assert [r for r, _ in rates] == [1e-2] * 5                                # the base rate controllers steer
    assert [n for _, n in rates] == pytest.approx([1e-2, 7.5e-3, 5e-3, 2.5e-3, 0.0])


def test_early_stopping_keeps_the_best_held_out_weights():
    learner = make("lora", learning_rate=0.1, loraplus_lr_ratio=1.0, holdout_fraction=0.3, eval_every=2, patience=2,
                   lr_schedule="constant")
    text = CODE + PROSE + MATH
    result = learner.learn_from_text(text, "mix", steps=30)
    ids = learner.encode(text)
    n = len(chunk_ids(ids, 16))
    held = ids[(n - math.floor(n * 0.3)) * 16:]                  # the last 30% of the chunks: never trained on
    assert result["examples"] == n - math.floor(n * 0.3) and result["steps"] <= 30
    # the weights kept are the best checked: their held-out loss is the best one seen
    assert result["best_step"] is not None and learner._loss_on(held) == pytest.approx(result["holdout_loss"], rel=1e-4)


def test_router_margin_keeps_the_bare_base(per_domain):
    from minimac.learner import routing
    ids = per_domain.encode(CODE)
    losses = routing.losses_by_route(per_domain, [ids])
    gap = losses[None][0] - losses["code"][0]
    assert gap > 0 and min(losses, key=lambda r: losses[r][0]) == "code"
    old = per_domain.config.route_margin
    try:
        per_domain.config.route_margin = gap + 0.01                           # not clearly better: the bare base
        assert per_domain.route(CODE) is None
        per_domain.config.route_margin = max(gap - 0.01, 0.0)
        assert per_domain.route(CODE) == "code"
        assert routing.route_many(per_domain, [ids, per_domain.encode(MATH)]) == ["code", "math"]
    finally:
        per_domain.config.route_margin = old
