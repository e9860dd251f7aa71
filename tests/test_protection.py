"""Nothing lost: the NaN guard, checkpoint refusals, resume rules, a user's own text, and the small CLI surprises.

One tiny learner checkpoint (as `python -m minimac.learn` makes one: base "docs" remembered, then "notes" learned,
with an R matrix) is built once per module; each test copies it. The CLI refusals happen before any training, which
the tests check by making the base model builder fail if it is ever reached.
"""
import hashlib
import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
from tinygrad import Tensor

from minimac import generate, learn, learn_plan, learn_rules
from minimac.learner import ContinualLearner, LearnerConfig
from minimac.model import ModelConfig, Transformer
from minimac.tokenizer import Tokenizer
from minimac.train import NonFiniteLossError

TINY = {"vocab_size": 257, "d_model": 32, "num_layers": 1, "num_query_heads": 2, "num_kv_heads": 1, "d_ff": 64,
        "max_seq_len": 32}
DOCS = "The os module gives a portable way of using operating system functions. " * 4
NOTES = "Zorbia's capital is Quixville. Quixville sits on the river Plim. " * 3


def tiny_learner(d_model: int = 32) -> ContinualLearner:
    Tensor.manual_seed(0)
    config = LearnerConfig(strategy="lora+replay+ewc", r=8, batch_size=4, seq_len=16, min_steps=2, fisher_samples=4,
                           target_modules=("q_proj", "v_proj"))
    return ContinualLearner(Transformer(ModelConfig(**{**TINY, "d_model": d_model})), Tokenizer(), config)


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("protection") / "ckpt"
    learner = tiny_learner()
    learner.remember(DOCS, "docs")
    learner.consolidate("docs")
    learner.learn_stream([("notes", NOTES)], {"docs": DOCS, "notes": NOTES}, base="docs", steps=2)
    learner.save_checkpoint(folder)
    return folder


@pytest.fixture
def ckpt(saved, tmp_path) -> Path:
    return Path(shutil.copytree(saved, tmp_path / "ckpt"))


@pytest.fixture
def no_training(monkeypatch):
    """Reaching the base model builder (the start of any training) fails the test."""
    import minimac.base_cache
    monkeypatch.setattr(minimac.base_cache, "cached_base", lambda *a, **k: pytest.fail("training started"))


def tree_hash(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def text_file(tmp_path: Path, text: str = NOTES, name: str = "other.txt") -> str:
    (tmp_path / name).write_text(text)
    return str(tmp_path / name)


# ---- 1. the NaN guard sees the last update ---------------------------------------------------------------------------
@pytest.mark.filterwarnings("ignore:overflow encountered in cast")
def test_a_final_update_that_goes_nan_restores_the_weights_and_saves_nothing(ckpt):
    """lr 1e39: the step's loss (computed before the update) is finite, the update makes the weights non-finite."""
    learner = ContinualLearner.load_checkpoint(ckpt)
    learner.set_learning_rate(1e39)
    trainer = learner._trainer_for("other")
    before, files = [t.numpy().copy() for t in trainer.state()], tree_hash(ckpt)
    losses = []
    learner.controllers.append(type("Watch", (), {"on_step": lambda self, L, s: losses.append(s["loss"]),
                                                  "on_domain_end": lambda self, L, d: None,
                                                  "select_replay": lambda self, *a, **k: None})())
    with pytest.raises(NonFiniteLossError, match=r"the last update \(step 1/1\) made the weights or the loss "
                                                 r"non-finite.*restored.*nothing was saved"):
        learner.learn_stream([("other", NOTES)], {"docs": DOCS, "other": NOTES}, base="docs", steps=1,
                             on_stage=lambda stage, scores: stage != "docs" and learner.save_checkpoint(ckpt))
    assert len(losses) == 1 and np.isfinite(losses[0])               # the old guard saw only this finite loss
    for t, b in zip(trainer.state(), before):
        np.testing.assert_array_equal(t.numpy(), b)
    assert tree_hash(ckpt) == files and not ckpt.with_name("ckpt.previous").exists()


@pytest.mark.slow   # compiles generation, evaluation and a step: ~20 s of CPU
@pytest.mark.filterwarnings("ignore:overflow encountered in cast")
def test_cli_final_update_nan_leaves_the_checkpoint_bytes_unchanged(ckpt, tmp_path, capsys):
    files = tree_hash(ckpt)
    argv = ["--no-live", "--resume", str(ckpt), "--data", text_file(tmp_path), "--domain", "other", "--save",
            str(ckpt), "--lr", "1e39", "--steps", "1"]
    assert learn.main(argv) == 1
    err = capsys.readouterr().err
    assert "error: the last update (step 1/1) made the weights or the loss non-finite" in err
    assert tree_hash(ckpt) == files


def test_save_refuses_non_finite_weights(ckpt):
    learner = ContinualLearner.load_checkpoint(ckpt)
    files = tree_hash(ckpt)
    trainer = learner._trainer_for("notes")
    trainer.params[0].assign(trainer.params[0] * float("nan")).realize()
    with pytest.raises(ValueError, match="refusing to save a learner with non-finite values .* nothing was written"):
        learner.save_checkpoint(ckpt)
    assert tree_hash(ckpt) == files and [p.name for p in ckpt.parent.iterdir()] == ["ckpt"]


# ---- 2. a checkpoint is replaced only by a run that resumed from it, or with --overwrite ----------------------------
def test_save_refuses_a_checkpoint_it_did_not_resume_before_training(ckpt, tmp_path, capsys, no_training):
    files, data = tree_hash(ckpt), text_file(tmp_path)
    assert learn.main(["--no-live", "--data", data, "--domain", "other", "--save", str(ckpt)]) == 1
    err = capsys.readouterr().err
    assert f"'{ckpt}' holds a learner checkpoint (it has learned docs, notes) and this run did not --resume" in err
    assert f"python -m minimac.learn --resume {ckpt} --data {data} --domain other --save {ckpt}" in err
    assert "add --overwrite" in err and tree_hash(ckpt) == files


def test_default_folder_runs_domain_is_protected_too(saved, tmp_path, capsys, monkeypatch, no_training):
    monkeypatch.chdir(tmp_path)
    shutil.copytree(saved, tmp_path / "runs" / "notes")
    assert learn.main(["--no-live", "--data", text_file(tmp_path), "--domain", "notes"]) == 1
    assert "It has learned 'notes' already" in capsys.readouterr().err


def test_a_folder_of_other_files_is_refused_before_training(tmp_path, capsys, no_training):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.txt").write_text("years of work")
    argv = ["--no-live", "--data", text_file(tmp_path), "--domain", "other", "--save", str(tmp_path / "mine")]
    assert learn.main(argv) == 1
    assert f"refusing to overwrite '{tmp_path / 'mine'}': it exists and is not a learner checkpoint" in \
        capsys.readouterr().err
    assert learn.main(argv + ["--overwrite"]) == 1          # --overwrite is for learner checkpoints only
    assert (tmp_path / "mine" / "thesis.txt").read_text() == "years of work"


def test_overwrite_lifts_the_refusal(ckpt, tmp_path, capsys, monkeypatch):
    import minimac.base_cache

    def reached(*a, **k):
        raise ValueError("reached the base model")

    monkeypatch.setattr(minimac.base_cache, "cached_base", reached)
    argv = ["--no-live", "--data", text_file(tmp_path), "--domain", "other", "--save", str(ckpt), "--overwrite"]
    assert learn.main(argv) == 1 and "reached the base model" in capsys.readouterr().err


# ---- 4. --resume applies or refuses every flag ------------------------------------------------------------------------
def test_resume_refuses_flags_that_would_change_the_learner(ckpt, capsys):
    files = tree_hash(ckpt)
    argv = ["--no-live", "--resume", str(ckpt), "--strategy", "full", "--seed", "3", "--preset", "tiny",
            "--base-steps", "5"]
    assert learn.main(argv) == 1
    err = capsys.readouterr().err
    for text in ("--strategy full (the checkpoint's is lora+replay+ewc)",
                 "--seed 3 (the checkpoint goes on from its own random state, seeded 0)",
                 "--preset tiny (the checkpoint's base model has d_model 32",
                 "--base-steps (the base model is in the checkpoint)"):
        assert text in err, text
    assert tree_hash(ckpt) == files


def test_resume_applies_lr_and_replay_ratio_and_says_what_it_keeps(ckpt):
    learner = ContinualLearner.load_checkpoint(ckpt)
    args = learn.parse_args(["--resume", str(ckpt), "--lr", "1e-3", "--replay-ratio", "0.25", "--strategy",
                             "lora+replay+ewc", "--seed", "0"])          # the checkpoint's own values are fine
    was = learner.config.lr
    lines = learn_rules.resume_settings(args, learner)
    assert learner.learning_rate == 1e-3 and learner.config.lr == 1e-3 and learner.replay_ratio == 0.25
    assert lines[0] == f"resumed {ckpt}: it has learned docs, notes"
    assert lines[1] == "  kept from the checkpoint: strategy lora+replay+ewc, base model d_model 32 x 1 layers, seed 0"
    assert lines[2] == f"  from the flags: lr 0.001 (was {was:.3g}), replay ratio 0.25 (was 0.5)"


# ---- 5. a user's own text: all of it, a bounded evaluation, every learned domain evaluated ---------------------------
def test_data_trains_on_the_whole_text_and_evaluates_a_bounded_sample(tmp_path):
    text = "".join(f"line {i}: the river Plim runs past Quixville.\n" for i in range(8000))   # ~370 k characters
    args = learn.parse_args(["--data", text_file(tmp_path, text), "--domain", "long"])
    plan = learn_plan.load_plan(args)
    assert plan["domains"]["long"]["train"] == [text]                       # not the first 200,000 characters
    sample = plan["domains"]["long"]["valid"]
    assert len(sample) <= learn_plan.EVAL_CHARS + 2 * learn_plan.EVAL_PIECES and text.endswith(sample[-100:])


def test_data_steps_say_exactly_what_part_is_used():
    steps, part = learn_plan.data_steps(10_000, 4, 30, None)
    cap = learn_plan.DATA_MAX_STEPS
    assert steps == cap and part == (f"{4 * cap:,} of its 10,000 windows ({100 * 4 * cap / 10_000:.0f}%), drawn at "
                                     f"random from the whole text (at most {cap} steps by default; --steps 2500 for "
                                     "one full pass)")
    assert learn_plan.data_steps(400, 4, 30, None) == (100, "all 400 windows")
    assert learn_plan.data_steps(400, 4, 30, 200) == (200, "all 400 windows, 2.0 times")


def test_learn_from_text_warns_before_thousands_of_steps():
    learner = tiny_learner()
    with warnings.catch_warnings():
        warnings.simplefilter("error")                                   # stops it before the first step
        with pytest.raises(UserWarning, match=r"the default \(1 pass over them\) is [\d,]+ optimizer steps; pass "
                                              "steps= or epochs="):
            learner.learn_from_text("abcdefgh " * 8000, "long")           # 72,000 byte tokens, 4,500 chunks


def test_evaluation_sets_are_kept_so_a_resumed_run_evaluates_earlier_domains(ckpt):
    learner = ContinualLearner.load_checkpoint(ckpt)
    assert learner.eval_sets == {"docs": DOCS, "notes": NOTES}
    learner.learn_stream([("other", "Plim fish swim upstream. " * 4)], {"docs": DOCS, "other": "Plim fish."},
                         base="docs", steps=1)
    assert learner.r_matrix.sets == ["docs", "other"]     # the library evaluates what it is given; the CLI adds:
    plan = {"base": "docs", "domains": {"docs": {"valid": DOCS}, "other": {"valid": "Plim fish."}}}
    sets = learn_plan.eval_sets_for(ContinualLearner.load_checkpoint(ckpt), plan, ["other"])
    assert sets == {"docs": DOCS, "notes": NOTES, "other": "Plim fish."}


@pytest.mark.slow
def test_cli_resume_keeps_evaluating_earlier_domains(ckpt, tmp_path, capsys):
    argv = ["--no-live", "--resume", str(ckpt), "--data", text_file(tmp_path), "--domain", "other", "--steps", "1",
            "--save", str(tmp_path / "more")]
    assert learn.main(argv) == 0
    out = capsys.readouterr().out
    assert "bits/byte after other: docs=" in out and "notes=" in out.split("bits/byte after other:")[1]
    assert "kept from the checkpoint: strategy lora+replay+ewc" in out
    assert json.loads((tmp_path / "more" / "learner.json").read_text())["domains"] == ["docs", "notes", "other"]


# ---- 6. the smaller surprises ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["../../x", "a/b", "..", ".hidden", "x" * 65])
def test_domain_names_cannot_leave_runs(name, capsys):
    with pytest.raises(SystemExit) as e:
        learn.parse_args(["--data", "f.txt", "--domain", name])
    assert e.value.code == 2 and "use letters, digits, '-', '_' and '.'" in capsys.readouterr().err


def test_ctrl_c_names_the_checkpoint_only_when_there_is_one(ckpt, tmp_path, monkeypatch, capsys):
    def interrupted(args, console):
        raise KeyboardInterrupt

    monkeypatch.setattr(learn, "run", interrupted)
    assert learn.main(["--no-live", "--save", str(tmp_path / "none")]) == 130
    assert "interrupted: nothing saved" in capsys.readouterr().out
    assert learn.main(["--no-live", "--save", str(ckpt)]) == 130
    assert f"the last checkpoint in {ckpt} is intact (it has learned docs, notes)" in capsys.readouterr().out


def test_generate_uses_the_previous_folder_of_an_interrupted_save(ckpt, capsys):
    ckpt.rename(ckpt.with_name("ckpt.previous"))                   # a kill between the two renames of a save
    assert generate.main(["--checkpoint", str(ckpt), "--prompt", "Zorbia", "--max-new-tokens", "2"]) == 0
    out = capsys.readouterr()
    assert out.out.startswith("Zorbia") and f"using '{ckpt}.previous', left by an interrupted save" in out.err


def test_stale_temp_folders_of_killed_saves_are_cleaned(ckpt):
    stale, live = ckpt.with_name(".ckpt.tmp-999999999-ab12"), ckpt.with_name(".ckpt.tmp-1-cd34")   # pid 1 is alive
    stale.mkdir()
    live.mkdir()
    ContinualLearner.load_checkpoint(ckpt).save_checkpoint(ckpt)
    assert not stale.exists() and live.exists()


@pytest.mark.parametrize("flag, message", [("--temperature", "temperature must be >= 0 and finite"),
                                           ("--repetition-penalty", "repetition_penalty must be > 0 and finite")])
def test_generate_refuses_nan_sampling_arguments(saved, flag, message, capsys):
    assert generate.main(["--checkpoint", str(saved), "--prompt", "x", flag, "nan"]) == 1
    assert f"error: {message} " in capsys.readouterr().err


def test_generate_ctrl_c_prints_no_traceback(saved, monkeypatch, capsys):
    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(generate, "stream", interrupted)
    assert generate.main(["--checkpoint", str(saved), "--prompt", "x"]) == 130
    assert capsys.readouterr().err.strip() == "interrupted"


def test_a_folder_given_to_data_is_named_as_a_folder(tmp_path, capsys):
    assert learn.main(["--no-live", "--data", str(tmp_path), "--domain", "notes"]) == 1
    assert f"error: --data '{tmp_path}' is a folder; give the text files in it" in capsys.readouterr().err


def test_pretrain_refuses_steps_and_tokens_together(capsys):
    from minimac.pretrain import parse_args
    with pytest.raises(SystemExit) as e:
        parse_args(["--steps", "2", "--tokens", "100"])
    assert e.value.code == 2 and "--steps and --tokens both say how long to train" in capsys.readouterr().err


def test_trainer_state_of_another_model_size_is_named_at_load(ckpt, tmp_path):
    other = tiny_learner(d_model=64)
    other._trainer_for("notes")
    other.save_checkpoint(tmp_path / "bigger")
    shutil.copy(tmp_path / "bigger" / "trainers.npz", ckpt / "trainers.npz")
    with pytest.raises(ValueError, match=r"cannot be resumed: the trainer state does not fit this model: trainer 'default' .*first mismatch "
                                         r"at #0 \(\(8, 64\) vs \(8, 32\)\); was it saved with another preset"):
        ContinualLearner.load_checkpoint(ckpt)
