"""Tests of benchmarks/forgetting.py: the report arithmetic on a hand-made R matrix, and a tiny end-to-end run."""
import importlib.util
import json
import math
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("forgetting_bench", ROOT / "benchmarks" / "forgetting.py")
fb = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fb)

# stages: base, d1, d2; sets: base, d1, d2, probe.  Lower is better (bits per byte).
R = [[1.00, 3.00, 4.00, 2.00],
     [1.10, 2.00, 3.00, 2.10],
     [1.20, 2.50, 1.50, 2.20]]
FULL = [[1.00, 3.00, 4.00, 2.00],    # full fine-tuning: gains 1.5 on d1 (3.0 -> 1.5) and 2.0 on d2 (3.0 -> 1.0)
        [1.40, 1.50, 3.00, 2.50],
        [1.80, 2.80, 1.00, 2.90]]


def test_forgetting_pct_matches_numpy_reference():
    s = fb.summarize(R, num_stages=3)
    Rn = np.array(R, dtype=np.float64)
    best = Rn[:, :2].min(axis=0)
    np.testing.assert_allclose(s["forgetting_pct"], 100 * (Rn[-1, :2] - best) / best, rtol=1e-12)
    np.testing.assert_allclose(s["forgetting_pct"], [20.0, 25.0], rtol=1e-12)
    assert s["avg_forgetting_pct"] == pytest.approx(22.5)
    assert s["worst_forgetting_pct"] == pytest.approx(25.0)
    # after stage 1 only the base is behind: 10%; the worst over stages is the final 25%
    assert s["worst_forgetting_pct_any_stage"] == pytest.approx(25.0)
    np.testing.assert_allclose(s["probe_change_pct"], [10.0], rtol=1e-12)


def test_worst_forgetting_any_stage_sees_a_recovered_dip():
    dip = [[1.0, 3.0, 3.0], [1.5, 2.0, 3.0], [1.0, 2.0, 2.0]]  # base forgot 50% at stage 1, then recovered
    s = fb.summarize(dip, num_stages=3)
    assert s["worst_forgetting_pct"] == pytest.approx(0.0)
    assert s["worst_forgetting_pct_any_stage"] == pytest.approx(50.0)


def test_gain_fraction_against_full_fine_tuning():
    full = fb.summarize(FULL, 3)
    np.testing.assert_allclose(full["gains"], [1.5, 2.0], rtol=1e-12)
    s = fb.summarize(R, 3, full["gains"])
    np.testing.assert_allclose(s["gains"], [1.0, 1.5], rtol=1e-12)
    np.testing.assert_allclose(s["gain_fraction"], [1.0 / 1.5, 1.5 / 2.0], rtol=1e-12)
    assert s["min_gain_fraction"] == pytest.approx(1.0 / 1.5)
    assert fb.summarize(FULL, 3, full["gains"])["min_gain_fraction"] == pytest.approx(1.0)


def test_bwt_and_fwt_signs():
    s = fb.summarize(R, 3)
    assert s["bwt"] < 0                                  # got worse on old sets: forgot
    assert s["bwt"] == pytest.approx(((1.0 - 1.2) + (2.0 - 2.5)) / 2)
    assert s["fwt"] > 0                                  # learning d1 helped d2 before its own stage
    assert s["fwt"] == pytest.approx(4.0 - 3.0)
    better = [[1.0, 3.0, 4.0], [0.9, 2.0, 4.5], [0.8, 1.9, 1.0]]  # later stages improve old sets, d1 hurt d2
    s = fb.summarize(better, 3)
    assert s["bwt"] > 0 and s["fwt"] < 0
    assert s["worst_forgetting_pct"] == pytest.approx(0.0)


def test_goal_check():
    ok = {"worst_forgetting_pct_any_stage": 0.9, "gain_vs_expert": [0.95, 0.91], "params_per_domain_pct": 12.0}
    assert fb.goal_met(ok)
    assert not fb.goal_met({**ok, "worst_forgetting_pct_any_stage": 1.1})
    assert not fb.goal_met({**ok, "gain_vs_expert": [0.95, 0.89]})
    assert not fb.goal_met({**ok, "gain_vs_expert": [math.nan, 0.95]})  # no expert reference: not met
    assert not fb.goal_met({**ok, "params_per_domain_pct": 15.5})       # too large an adapter per domain


def test_gain_against_the_expert_starts_from_the_base():
    # expert ends d1 at 2.0 and d2 at 1.0 (from the base's 3.0 and 4.0): gains 1.0 and 3.0
    s = fb.summarize(R, 3, expert=[2.0, 1.0])
    np.testing.assert_allclose(s["gain_vs_expert"], [(3.0 - 2.0) / 1.0, (4.0 - 1.5) / 3.0], rtol=1e-12)
    assert s["min_gain_vs_expert"] == pytest.approx(2.5 / 3.0)
    np.testing.assert_allclose(s["final_bpb"], [2.5, 1.5])


def test_overrides_are_typed_and_checked():
    o = fb.parse_overrides("r=24,use_rslora=true,loraplus_lr_ratio=16,modules_to_save=norm,lr_schedule=cosine")
    assert o == {"r": 24, "use_rslora": True, "loraplus_lr_ratio": 16.0, "modules_to_save": ("norm",),
                 "lr_schedule": "cosine"}
    with pytest.raises(ValueError, match="lr_schedule"):
        fb.parse_overrides("lr_schedule=sideways")
    with pytest.raises(ValueError, match="FIELD=VALUE"):
        fb.parse_overrides("colour=blue")
    assert fb.parse_args(["--quick", "--seeds", "0,2"]).seeds == [0, 2]


def test_bad_arguments_are_named():
    with pytest.raises(SystemExit):
        fb.parse_args(["--strategies", "lora,nonsense"])
    with pytest.raises(SystemExit):
        fb.parse_args(["--neuro", "telepathy"])


def test_unknown_strategy_message(capsys):
    with pytest.raises(SystemExit):
        fb.parse_args(["--strategies", "nonsense"])
    assert "unknown strategy" in capsys.readouterr().err


def test_bad_learning_rate_message(capsys):
    with pytest.raises(SystemExit):
        fb.parse_args(["--lora-lr", "-1"])
    assert "--lora-lr, --rank, --lora-alpha and --route-windows must be positive" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        fb.parse_args(["--route-windows", "0"])
    assert "--route-windows must be positive" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        fb.parse_args(["--route-margin", "-0.1"])
    assert "--route-margin must be >= 0" in capsys.readouterr().err


def test_default_run_adds_the_best_neuro_configuration():
    args = fb.parse_args(["--quick"])
    assert args.strategies == list(fb.STRATEGIES + fb.REFERENCES) and args.neuro == list(fb.BEST_NEURO)
    assert fb.parse_args(["--quick", "--strategies", "lora"]).neuro == []          # a chosen subset: no extra run
    assert fb.parse_args(["--quick", "--neuro", "none"]).neuro == []
    assert fb.parse_args(["--strategies", "", "--neuro", "all"]).neuro == list(fb.NEURO)
    assert fb.parse_args(["--strategies", ""]).strategies == []


def test_replay_ratio_is_checked_and_reaches_the_replay_strategies_only(capsys, monkeypatch):
    for bad in ("0", "1", "1.5"):
        with pytest.raises(SystemExit):
            fb.parse_args(["--replay-ratio", bad])
        assert "--replay-ratio must be between 0 and 1" in capsys.readouterr().err
    assert fb.parse_args(["--quick"]).replay_ratio is None             # LearnerConfig's default (0.5)
    configs = []

    class Stop(Exception):
        pass

    def spy(model, tokenizer, config, controllers=()):  # record the learner's config, then stop the run
        configs.append(config)
        raise Stop

    import minimac.learner
    monkeypatch.setattr(minimac.learner, "ContinualLearner", spy)
    for strategy in ("full", "full+replay+ewc", "lora+replay"):
        with pytest.raises(Stop):
            fb.run_strategy(strategy, lambda: None, None, {}, 1, 8, 16, replay_ratio=0.25)
    assert [c.replay_ratio for c in configs] == [0.25] * 3            # "full" ignores it: it never replays
    assert [c.learning_rate for c in configs] == [None, None, None]


def test_routing_by_name_becomes_its_own_row():
    run = {"strategy": "adapter-per-domain", "stages": ["base", "a"], "sets": ["base", "a"], "R": [[1.0, 2.0], [1.0, 2.0]],
           "R_by_name": [[1.0, 2.0], [1.0, 1.5]], "routes": [], "train": [{"examples": 8, "steps": 1,
                                                                              "step_seconds": 1.0, "median_step_s": 1.0,
                                                                              "seconds": 1.0}]}
    runs = fb.with_named_routing([run])
    assert [r["strategy"] for r in runs] == ["adapter-per-domain", "adapter-per-domain" + fb.BY_NAME]
    assert runs[1]["R"] == [[1.0, 2.0], [1.0, 1.5]] and "R_by_name" not in runs[1]
    fb.add_summaries(runs)
    assert runs[0]["summary"]["gains"] == [0.0] and runs[1]["summary"]["gains"] == [0.5]


def test_append_refuses_other_settings(tmp_path):
    meta = {"base_folder": "b", "domains": ["x"], "probes": [], "steps": 1, "train_chars": 1, "eval_chars": 1}
    runs = [{"strategy": "lora", "seed": 0}, {"strategy": "lora", "seed": 1}, {"strategy": "full", "seed": 0}]
    (tmp_path / "forgetting.json").write_text(json.dumps({"meta": meta, "runs": runs}))
    with pytest.raises(ValueError, match="made with other settings"):
        fb.earlier_runs(tmp_path / "forgetting.json", {**meta, "domains": ["y"]}, [])
    kept = fb.earlier_runs(tmp_path / "forgetting.json", meta, [("lora", 1)])       # run again: replaced
    assert [(r["strategy"], r["seed"]) for r in kept] == [("lora", 0), ("full", 0)]


def test_domains_must_differ_from_base():
    args = fb.parse_args(["--corpus", "default", "--domains", "docs", "--quick"])
    with pytest.raises(ValueError, match="other than the base"):
        fb.load_plan(args)


def test_references_train_what_they_should(monkeypatch):
    """expert: a fresh copy of the base per domain, `steps` on that domain alone; joint: one copy, every domain's text
    together, steps x domains."""
    calls = []

    class Spy:
        def __init__(self, model, tokenizer, config, controllers=()):
            self.model, self.config = model, config
            calls.append(("new", model, config.strategy))

        def learn_from_text(self, text, domain, steps):
            calls.append(("learn", domain, text, steps))
            return {"steps": steps, "seconds": 0.0, "loss_before": 1.0, "loss_after": 0.5}

    import minimac.learner
    monkeypatch.setattr(minimac.learner, "ContinualLearner", Spy)
    monkeypatch.setattr(fb.metrics, "bits_per_byte_of_text", lambda model, tok, text, *a: len(text) / 100)
    plan = {"base": "base", "domains": ["a", "b"], "train": {"a": "aaa", "b": "bbb"},
            "test": {"base": "x" * 100, "a": "y" * 200, "b": "z" * 300}}
    models = iter(range(10))
    fb.run_reference("expert", lambda: next(models), None, plan, steps=5, batch_size=4, seq_len=16, say=print)
    assert calls == [("new", 0, "full"), ("learn", "a", "aaa", 5), ("new", 1, "full"), ("learn", "b", "bbb", 5)]
    calls.clear()
    joint = fb.run_reference("joint", lambda: next(models), None, plan, steps=5, batch_size=4, seq_len=16, say=print)
    assert calls == [("new", 2, "full"), ("learn", "joint", "aaa\n\nbbb", 10)]
    assert joint["final"] == {"a": 2.0, "b": 3.0, "base": 1.0}


@pytest.mark.slow
def test_tiny_end_to_end(tmp_path):
    from tinygrad import Tensor

    from minimac.model import ModelConfig, Transformer
    from minimac.tokenizer import Tokenizer

    Tensor.manual_seed(0)
    cfg = ModelConfig(vocab_size=257, d_model=32, num_layers=1, num_query_heads=2, num_kv_heads=1, d_ff=64,
                      max_seq_len=32)
    base = Transformer(cfg)
    state = {k: v.numpy() for k, v in base.state_dict().items()}

    def make_model():
        m = Transformer(cfg)
        m.load_state_dict({k: Tensor(v) for k, v in state.items()}, strict=False)
        return m

    texts = {"base": "the cat sat on the mat. " * 20, "a": "def f(x):\n    return x + 1\n" * 20,
             "b": "Question: 2 + 2? Answer: 4\n" * 20, "probe": "a dog ran in the park. " * 10}
    plan = {"base": "base", "domains": ["a", "b"], "probes": ["probe"], "base_docs": [texts["base"]],
            "train": {"a": texts["a"], "b": texts["b"]}, "test": {k: v[:200] for k, v in texts.items()}}
    runs = [fb.run_strategy(s, make_model, Tokenizer(), plan, steps=3, batch_size=4, seq_len=16, say=lambda m: None)
            for s in ("full", "lora+replay", "adapter-per-domain")]
    refs = [fb.run_reference(k, make_model, Tokenizer(), plan, steps=3, batch_size=4, seq_len=16, say=lambda m: None)
            for k in ("expert", "joint")]
    expert, joint = refs
    assert set(expert["final"]) == {"a", "b"} and set(joint["final"]) == {"base", "a", "b"}
    # the expert starts every domain from the base: its first domain equals full fine-tuning's first stage
    assert expert["final"]["a"] == pytest.approx(runs[0]["R"][1][1], rel=1e-4)
    assert [t["steps"] for t in expert["train"]] == [3, 3] and [t["steps"] for t in joint["train"]] == [6]
    assert expert["base_bpb"]["a"] == pytest.approx(runs[0]["R"][0][1], rel=1e-5)
    fb.add_summaries(runs + refs)
    assert runs[0]["summary"]["gain_vs_expert"][0] == pytest.approx(1.0, rel=1e-3)
    assert runs[2]["confusion"]["total"] >= 0 and runs[2]["params_per_domain_pct"] > 0
    for r in runs:
        R = np.array(r["R"])
        assert R.shape == (3, 4) and np.isfinite(R).all() and (R > 0).all()
        assert r["sets"] == ["base", "a", "b", "probe"]
        assert [t["examples"] for t in r["train"]] == [12, 12]
        assert len(r["summary"]["gain_fraction"]) == 2
    assert "R_by_name" in runs[2] and np.array(runs[2]["R_by_name"]).shape == (3, 4)
    # routed by name, the base set always runs on the bare base: adapter-per-domain cannot forget it
    assert np.allclose(np.array(runs[2]["R_by_name"])[:, 0], runs[2]["R_by_name"][0][0])
    assert runs[0]["summary"]["gain_fraction"] == pytest.approx([1.0, 1.0]) or \
        any(math.isnan(f) for f in runs[0]["summary"]["gain_fraction"])
    meta = {"command": "x", "machine": "y", "load_start": 0.0, "load_end": 0.0, "base": "base", "domains": ["a", "b"],
            "probes": ["probe"], "steps": 3, "batch_size": 4, "seq_len": 16, "tokens_per_stage": 192,
            "train_chars": 1, "eval_chars": 200, "base_folder": "toy", "wall_s": 1.0}
    md = fb.markdown({"meta": meta, "runs": runs + refs})
    assert "| full |" in md and "### adapter-per-domain" in md and "Automatic routes" in md
    assert "| expert | 1 |" in md and "| joint | 1 |" in md                    # beside every strategy's final bpb
    assert "Command: `x`" in md                                  # one command made every run
    runs[1]["command"] = "x --strategies lora+replay --append"
    md = fb.markdown({"meta": meta, "runs": runs})               # an appended run names its own command
    assert "Command: `x`" not in md and "`x`  \n`x --strategies lora+replay --append`" in md
    json.dumps({"meta": meta, "runs": runs})  # serialisable


def test_learning_goal_takes_fact_recall_from_a_facts_result(tmp_path):
    goal = {"strategy": "adapter-per-domain", "fact_recall_now": None, "fact_recall_later": None}
    assert fb.with_fact_recall(goal, None) is goal
    runs = [{"strategy": "full", "fact_recall_now": 0.9, "fact_recall_later": 0.0, "machine": "m", "command": "c"},
            {"strategy": "adapter-per-domain (the default)", "fact_recall_now": 0.98, "fact_recall_later": 0.95,
             "machine": "cpu", "command": "python benchmarks/facts.py"}]
    (tmp_path / "facts.json").write_text(json.dumps({"meta": {}, "runs": runs}))
    out = fb.with_fact_recall(goal, str(tmp_path / "facts.json"))
    assert (out["fact_recall_now"], out["fact_recall_later"], out["fact_recall_machine"]) == (0.98, 0.95, "cpu")
    with pytest.raises(ValueError, match="no run of 'lora'"):
        fb.with_fact_recall({**goal, "strategy": "lora"}, str(tmp_path / "facts.json"))
