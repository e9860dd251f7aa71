"""`python -m minimac.learn` (minimac/learn.py): flags, errors, and the whole demo end to end on a micro model.

The end-to-end runs pretrain a base and compile two training steps, which takes minutes on a 2-core CPU, so they
are marked slow; the flag and error tests are fast.
"""
import pytest

from minimac import learn
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
                 "--domain", "--benchmark"):
        assert flag in out


@pytest.mark.parametrize("argv, message", [
    (["--strategy", "magic"], "invalid choice: 'magic'"),
    (["--steps", "0"], "--steps must be positive"),
    (["--data", "notes.txt"], "--data and --domain go together"),
    (["--domain", "notes"], "--data and --domain go together"),
    (["--bogus"], "unrecognized arguments: --bogus"),
])
def test_bad_flags_exit_with_a_message(argv, message, capsys):
    with pytest.raises(SystemExit) as e:
        learn.main(argv)
    assert e.value.code == 2 and message in capsys.readouterr().err


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


def test_benchmark_flag_hands_its_own_flags_to_the_forgetting_benchmark(capsys):
    with pytest.raises(SystemExit) as exit_info:  # argparse exits 0 after --help
        learn.main(["--benchmark", "--quick", "--help"])
    assert exit_info.value.code == 0
    assert "--strategies" in capsys.readouterr().out  # the benchmark's parser answered, not learn's


def test_ctrl_c_says_the_checkpoint_is_intact(monkeypatch, capsys, tmp_path):
    def interrupted(args, console):
        raise KeyboardInterrupt

    monkeypatch.setattr(learn, "run", interrupted)
    assert learn.main(["--no-live", "--save", str(tmp_path / "ckpt")]) == 130
    assert f"the last checkpoint in {tmp_path / 'ckpt'} is intact" in capsys.readouterr().out


@pytest.fixture
def micro(monkeypatch, tmp_path):
    monkeypatch.setitem(PRESETS, "micro", MICRO)
    monkeypatch.setenv("MINIMAC_CACHE", str(tmp_path / "cache"))
    return tmp_path


@pytest.mark.slow
def test_demo_end_to_end_then_resume(micro, capsys):
    argv = ["--preset", "micro", "--base-steps", "6", "--steps", "4", "--no-live", "--save", str(micro / "run")]
    assert learn.main(argv) == 0
    out = capsys.readouterr().out
    for expected in ("this first run will take about", "stage 1/1: learning code", "R matrix",
                     "average forgetting", "generations", f"saved {micro / 'run'} after learning code"):
        assert expected in out, expected
    assert (micro / "run" / "learner.json").is_file()
    assert learn.main(argv[:-2] + ["--resume", str(micro / "run")]) == 0          # nothing left: says so
    assert "nothing left" in capsys.readouterr().out
    assert learn.main(argv[:-2]) == 0                                            # the base is cached now
    assert "reusing the cached base model" in capsys.readouterr().out


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
