"""`python -m minimac.learn` (minimac/learn.py): flags, errors, and the whole demo end to end on a micro model.

The end-to-end runs pretrain a base and compile two training steps, which takes minutes on a 2-core CPU, so they
are marked slow; the flag and error tests are fast.
"""
import pytest

from minimac import learn, learn_show
from minimac.device import BackendUnavailable
from minimac.model import PRESETS

MICRO = {"vocab_size": 512, "d_model": 32, "num_layers": 1, "num_query_heads": 2, "num_kv_heads": 1, "d_ff": 64,
         "max_seq_len": 64}


def test_help_lists_the_flags(capsys):
    with pytest.raises(SystemExit) as e:
        learn.main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for flag in ("--corpus", "--strategy", "--preset", "--steps", "--no-live", "--save", "--resume", "--data",
                 "--domain", "--neuro"):
        assert flag in out


@pytest.mark.parametrize("argv, message", [
    (["--strategy", "magic"], "invalid choice: 'magic'"),
    (["--steps", "0"], "--steps must be positive"),
    (["--replay-ratio", "1"], "--replay-ratio must be at least 0 and below 1"),
    (["--data", "notes.txt"], "--data and --domain go together"),
    (["--domain", "notes"], "--data and --domain go together"),
    (["--bogus"], "unrecognized arguments: --bogus"),
])
def test_bad_flags_exit_with_a_message(argv, message, capsys):
    with pytest.raises(SystemExit) as e:
        learn.main(argv)
    assert e.value.code == 2 and message in capsys.readouterr().err


def test_neuro_flag_names_the_controllers():
    assert learn.parse_args([]).neuro == []
    assert learn.parse_args(["--neuro", "sleep, hippocampus"]).neuro == ["hippocampus", "sleep"]   # replay selector first
    assert learn.parse_args(["--neuro", "all"]).neuro == list(learn.NEURO_NAMES)
    assert learn.parse_args(["--neuro", "neuromod,autonomous_lr"]).neuro == ["autonomous_lr", "neuromodulation"]


@pytest.mark.parametrize("value, message", [
    ("magic", ("--neuro: unknown controller(s) 'magic'; choose from hippocampus, autonomous_lr, neuromodulation, "
               "homeostasis, sleep (comma-separated), or all")),
    ("sleep,dopamine", "unknown controller(s) 'dopamine'"),
    (",", "unknown controller(s) ','"),
    ("dendritic", "'dendritic' is a model option, not a controller: build the model with ModelConfig(ffn_type="),
])
def test_bad_neuro_names_exit_with_a_message(value, message, capsys):
    with pytest.raises(SystemExit) as e:
        learn.main(["--neuro", value])
    assert e.value.code == 2 and message in capsys.readouterr().err


@pytest.mark.parametrize("live", [True, False])
def test_readout_shows_each_controllers_state(live):
    """The demo's panel (rendered into a string, no terminal) gets one row per --neuro controller with its state."""
    import io

    from rich.console import Console

    from minimac.learner import ContinualLearner
    from minimac.learner.strategies import LearnerConfig
    from minimac.model import ModelConfig, Transformer
    from minimac.neuro import Homeostasis, Sleep
    from minimac.readout import Readout, fmt_value
    from minimac.tokenizer import Tokenizer
    model = Transformer(ModelConfig(**{**MICRO, "max_seq_len": 16}))
    ctls = learn.build_controllers(learn.parse_args(["--neuro", "all"]).neuro, model)
    assert [c.name for c in ctls] == ["hippocampus", "autonomous_lr", "neuromod", "homeostasis", "sleep"]
    assert isinstance(ctls[3], Homeostasis) and ctls[3].model is model and isinstance(ctls[4], Sleep)
    learner = ContinualLearner(model, Tokenizer(), LearnerConfig(strategy="lora+replay+ewc", batch_size=4, seq_len=16),
                               controllers=ctls)
    learner.remember("The base text the model knew before. " * 4, domain="base")
    for k, loss in enumerate([5.0, 4.5]):                     # two steps' stats, as the learner hands them over
        stats = {"step": k + 1, "steps": 2, "global_step": k + 1, "loss": loss, "ewc": 0.0, "grad_norm": 1.0}
        for c in ctls:
            c.on_step(learner, stats)
    ctls[4].on_domain_end(learner, "base")
    buf = io.StringIO()
    console = Console(file=buf, force_terminal=live, width=160, color_system=None)
    with Readout(live=live, console=console, every=1) as r:
        show = learn_show.StepShow(r, ["code"])
        learner.controllers.append(show)
        show.on_step(learner, {**stats, "domain": "code", "tokens_per_s": 100.0, "eta_s": 1.0})
        if live:
            console.print(r.panel())
    out = buf.getvalue()
    nm, hom = ctls[2], ctls[3]
    for text in ("hippocampus", "episodes ", "autonomous_lr", f"lr {fmt_value(ctls[1].lr)}", "neuromod",
                 f"DA {fmt_value(nm.dopamine)}", f"5-HT {fmt_value(nm.serotonin)}", f"NE {fmt_value(nm.noradrenaline)}",
                 "homeostasis", f"dead {fmt_value(hom.readout()['dead_fraction'])}", "probes 1", "sleep",
                 "sleeps 1", f"pruned {fmt_value(ctls[4].totals['connections_pruned'])}"):
        assert text in out, text
    assert "StepShow" not in out                                   # the demo's own watcher is not a controller row
    assert [fmt_value(v) for v in (4.0, 12345.0, 0.51234, 2.1e-4, float("nan"))] == \
        ["4", "12,345", "0.512", "2.10e-04", "-"]


def test_missing_data_file_is_a_clear_error(tmp_path, capsys):
    assert learn.main(["--data", str(tmp_path / "absent.txt"), "--domain", "notes", "--no-live"]) == 1
    assert f"error: --data file '{tmp_path / 'absent.txt'}' does not exist" in capsys.readouterr().err
    (tmp_path / "empty.txt").write_text("  \n")
    assert learn.main(["--data", str(tmp_path / "empty.txt"), "--domain", "notes", "--no-live"]) == 1
    assert "is empty" in capsys.readouterr().err


def test_unknown_corpus_is_a_clear_error(capsys):
    assert learn.main(["--corpus", "nonesuch,default", "--no-live"]) == 1
    assert "unknown corpus 'nonesuch'" in capsys.readouterr().err


def test_device_problem_prints_the_fix_not_a_traceback(monkeypatch, capsys):
    def broken():
        raise BackendUnavailable("clang is not on PATH. To fix it, install clang")

    monkeypatch.setattr(learn, "check_device", broken)
    assert learn.main(["--no-live"]) == 2
    assert "error: clang is not on PATH" in capsys.readouterr().err


@pytest.fixture
def micro(monkeypatch, tmp_path):
    monkeypatch.setitem(PRESETS, "micro", MICRO)
    monkeypatch.setenv("MINIMAC_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)   # the demo's chart goes to runs/ here
    return tmp_path


@pytest.mark.slow
def test_demo_end_to_end_then_resume(micro, capsys):
    argv = ["--preset", "micro", "--base-steps", "6", "--steps", "4", "--no-live", "--save", str(micro / "run")]
    assert learn.main(argv) == 0
    out = capsys.readouterr().out
    for expected in ("this first run will take about", "stage 1/2: learning code", "stage 2/2: learning facts",
                     "R matrix", "average forgetting", f"saved {micro / 'run'} after learning facts",
                     "2/2 naive full fine-tuning", "bits per byte over the steps", "the facts, asked",
                     "facts recalled: the base model 0/6", "chart saved to runs/learn-"):
        assert expected in out, expected
    assert (micro / "run" / "learner.json").is_file()
    assert len(list((micro / "runs").glob("learn-*.png"))) == 1
    resume = ["--preset", "micro", "--no-live", "--resume", str(micro / "run")]
    assert learn.main(resume) == 0                                                # nothing left: says so
    assert "nothing left" in capsys.readouterr().out
    assert learn.main(argv[:-2]) == 0                                            # the base is cached now
    assert "reusing the cached base model" in capsys.readouterr().out


@pytest.mark.slow
def test_demo_with_every_controller_saves_their_state(micro, capsys):
    import json
    argv = ["--preset", "micro", "--base-steps", "6", "--steps", "4", "--no-live", "--neuro", "all", "--save",
            str(micro / "run"), "--strategy", "lora+replay+ewc"]      # sleep dreams on the replay buffer
    assert learn.main(argv) == 0
    out = capsys.readouterr().out
    for expected in ("hippocampus: episodes", "autonomous_lr: lr", "neuromod: DA", "homeostasis: dead",
                     "sleep: sleeps 3"):   # the base's consolidation and the end of each learned domain (code, facts)
        assert expected in out, expected
    saved = json.loads((micro / "run" / "learner.json").read_text())["controllers"]
    assert set(saved) == {"hippocampus", "autonomous_lr", "neuromod", "homeostasis", "sleep"}
    assert saved["sleep"]["state"]["sleeps"] == 3


@pytest.mark.slow
def test_learn_your_own_text_then_generate(micro, capsys):
    from minimac.generate import main as generate
    notes = micro / "notes.txt"
    notes.write_text("Zorbia's capital is Quixville. Quixville sits on the river Plim.\n" * 3)
    out_dir = micro / "notes"
    argv = ["--preset", "micro", "--base-steps", "6", "--steps", "5", "--no-live", "--data", str(notes), "--domain",
            "notes", "--save", str(out_dir), "--strategy", "lora"]
    assert learn.main(argv) == 0
    assert "learning notes" in capsys.readouterr().out
    assert generate(["--checkpoint", str(out_dir), "--prompt", "Zorbia's capital", "--max-new-tokens", "5"]) == 0
    assert capsys.readouterr().out.startswith("Zorbia's capital")


@pytest.mark.parametrize("live", [True, False])
def test_readout_shows_progress_and_colours_forgetting(live):
    import io

    from rich.console import Console

    from minimac.readout import Readout, forgetting_style
    buf = io.StringIO()
    console = Console(file=buf, force_terminal=live, width=120, color_system="truecolor" if live else None)
    with Readout(live=live, console=console, every=1) as r:
        r.stage("code", 1, 2, steps=40)
        r.step({"step": 1, "steps": 40, "loss": 2.5, "lr": 2e-3, "tokens_per_s": 900.0, "eta_s": 95.0})
        r.scores(["docs", "code"], [[2.0, 3.0], [2.3, 2.5]], ["docs", "code"])
    out = buf.getvalue()
    for text in ("code", "step 1/40", "loss 2.500", "lr 2.00e-03", "900 tok/s", "ETA 1m35s", "2.300"):
        assert text in out, text
    assert [forgetting_style(p) for p in (0.5, 5.0, 15.0)] == ["green", "yellow", "red"]
    if live:
        assert "+0.300 (15.0%)" in out                                    # docs: 2.0 -> 2.3, red


def test_readout_eta_leaves_out_the_first_steps_compile(monkeypatch):
    """The learner's own ETA divides by every step so far, compile included (28 minutes shown for a 3-minute stage);
    the readout's comes from the pace of the steps after the first."""
    import io

    from rich.console import Console

    import minimac.readout
    from minimac.readout import Readout
    clock = iter([30.0, 31.0, 32.0, 33.0])       # the first step ends after a 30 s compile, then 1 s a step
    monkeypatch.setattr(minimac.readout.time, "perf_counter", lambda: next(clock))
    buf = io.StringIO()
    with Readout(live=False, console=Console(file=buf, width=120), every=1) as r:
        r.stage("notes", 1, 1, steps=10)
        for k in range(1, 5):
            r.step({"step": k, "steps": 10, "loss": 2.0, "lr": 1e-3, "tokens_per_s": 1.0, "eta_s": 30.0 * (10 - k)})
    lines = buf.getvalue().splitlines()
    assert "ETA 4m30s" in lines[1] and "ETA 7.0s" in lines[3] and "ETA 6.0s" in lines[4]
