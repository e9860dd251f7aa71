"""What the demo shows (minimac/learn_show.py) and the facts it teaches (minimac/learn_plan.py): no model needed."""
import argparse
import io

import pytest
from rich.console import Console

from minimac import learn, learn_plan, learn_quiz, learn_show
from minimac.learn_quiz import quiz_table, recalled
from minimac.learn_show import Curves, curves_table, save_png, sparkline


def render(renderable) -> str:
    console = Console(file=io.StringIO(), width=200, color_system=None)
    console.print(renderable)
    return console.file.getvalue()


def test_sparkline_maps_the_scale_to_blocks():
    assert sparkline([1.0, 2.0, 3.0], 1.0, 3.0) == "▁▅█"
    assert sparkline([2.0, 2.0], 2.0, 2.0) == "▁▁"             # a flat set: no scale, the lowest block
    assert sparkline([2.0, 1.0], 1.0, 5.0) == "▃▁"


class FakeLearner:
    """evaluate() returns the number of calls so far for every set."""

    def __init__(self):
        self.calls = 0

    def evaluate(self, sets):
        self.calls += 1
        return {name: float(self.calls) for name in sets}


def test_curves_evaluate_every_k_steps_but_not_at_the_stage_end():
    learner, c = FakeLearner(), Curves({"docs": "x", "facts": "y"}, every=2)
    c.add({"docs": 5.0, "facts": 6.0})                          # the stage-0 row of the R matrix
    for k in range(1, 6):
        c.on_step(learner, {"step": k, "steps": 6})
    c.on_step(learner, {"step": 6, "steps": 6})                 # the end: the learner's own evaluation comes via add
    c.end_stage()
    c.add({"docs": 9.0, "facts": 0.5})
    assert [s for s, _ in c.points] == [0, 2, 4, 6]
    assert c.series("facts") == ([0, 2, 4, 6], [6.0, 1.0, 2.0, 0.5])
    assert c.stage_ends == [6]
    assert learner.calls == 2


def two_runs() -> dict:
    protected, naive = Curves({}), Curves({})
    for step, (d, f) in enumerate([(2.0, 4.0), (2.0, 1.0)]):
        protected.step = step * 10
        protected.add({"docs": d, "facts": f})
    for step, (d, f) in enumerate([(2.0, 4.0), (2.5, 0.8)]):
        naive.step = step * 10
        naive.add({"docs": d, "facts": f})
    protected.stage_ends = naive.stage_ends = [10]
    return {"protected": protected, "naive": naive}


def test_curves_table_gives_each_learner_its_change_on_a_shared_scale():
    text = render(curves_table(two_runs()))
    cells = [[c.strip() for c in line.split("│")[1:-1]] for line in text.splitlines() if line.startswith("│")]
    rows = {(c[0], c[1]): " ".join(c) for c in cells}
    assert "+0.0%" in rows["docs", "protected"] and "▁▁" in rows["docs", "protected"]
    assert "+25.0%" in rows["docs", "naive"] and "▁█" in rows["docs", "naive"]
    assert "-75.0%" in rows["facts", "protected"]


def test_the_chart_goes_to_a_new_file_and_never_over_one(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    monkeypatch.setattr(learn_show.time, "strftime", lambda fmt: "20260101-000000")
    mine = tmp_path / "learn-20260101-000000.png"
    mine.write_bytes(b"the user's own file")
    path = save_png(two_runs(), tmp_path, ["facts"])
    assert path == tmp_path / "learn-20260101-000000-1.png"
    assert path.read_bytes().startswith(b"\x89PNG")
    assert mine.read_bytes() == b"the user's own file"


def test_recalled_needs_the_answer_first():
    assert recalled(" Tarsk.\nThe", "Tarsk")
    assert not recalled(" the Tarsk", "Tarsk")
    assert not recalled(" Tars", "Tarsk")


def test_quiz_table_ticks_and_counts():
    facts = [("The capital of Velmora is", "Tarsk"), ("The king of Velmora is", "Borin")]
    answers = {"base": [("\nnot a string.", False, None), (" the", False, None)],
               "protected": [(" Tarsk.\nThe", True, "facts"), (" Borin.", True, "facts")]}
    text = render(quiz_table(facts, answers))
    assert "base: 0/2" in text and "protected: 2/2" in text
    assert "✓ ' Tarsk.'".replace(" ' ", " '") in text or "✓ 'Tarsk.'" in text
    assert "✗ 'not a string.'" in text                        # the first line that says something


def test_facts_text_holds_every_fact_in_every_copy():
    text = learn_plan.facts_text(copies=3)
    lines = text.splitlines()
    assert len(lines) == 3 * len(learn_plan.FACTS)
    assert lines[0] == "The capital of Velmora is Tarsk."
    for prompt, answer in learn_plan.FACTS:
        assert lines.count(f"{prompt} {answer}.") == 3
    assert learn_plan.facts_text() == learn_plan.facts_text()   # seeded: the same text every run


def test_facts_are_the_demos_last_stage_but_not_with_data(tmp_path, monkeypatch):
    monkeypatch.setenv("MINIMAC_DATA", str(tmp_path / "nothing"))  # the default corpus ships with Python
    plan = learn_plan.load_plan(learn.parse_args([]))
    assert plan["stream"][-1] == learn_plan.FACTS_DOMAIN
    assert "Tarsk" in plan["domains"]["facts"]["train"][0]
    assert not any("Tarsk" in "".join(docs) for docs in plan["tokenizer_docs"])   # the cached base is unchanged
    notes = tmp_path / "notes.txt"
    notes.write_text("some notes of mine\n" * 20)
    plan = learn_plan.load_plan(learn.parse_args(["--data", str(notes), "--domain", "notes"]))
    assert plan["stream"] == ["notes"]


@pytest.mark.parametrize("argv, naive", [([], True), (["--no-naive"], False), (["--strategy", "full"], False),
                                         (["--resume", "x"], False), (["--data", "f", "--domain", "d"], False)])
def test_the_naive_contrast_runs_only_in_the_demo(argv, naive):
    args = learn.parse_args(argv)
    assert learn_plan.naive_contrast(args, args.strategy or learn.DEFAULTS["strategy"]) == naive


def test_the_estimate_counts_the_naive_run():
    args = {"t": {"first_steps_s": 20.0, "pretrain_step_s": 0.2}, "setup_s": None, "step_s": 0.1, "stages": 2,
            "steps": 40, "evals": 9, "tokens": 100, "per_domain": True}
    alone, both = learn_plan.estimate(**args), learn_plan.estimate(**args, naive=True)
    assert both > alone + 20.0   # at least the naive run's compile


def test_a_first_runs_estimate_plans_the_steps_of_the_users_text(tmp_path):
    """Before the tokenizer exists, --data's steps are guessed from the text's length (the demo's stage before)."""
    assert learn_plan.guess_stage_steps(learn.parse_args([]), {}, 8, 64) == learn_plan.DEMO["stage_steps"]
    novel = {"novel": {"train": ["x" * 1_000_000]}}
    args = learn.parse_args(["--data", "f", "--domain", "novel"])
    assert learn_plan.guess_stage_steps(args, novel, 8, 64) == learn_plan.DATA_MAX_STEPS        # a 1 MB text: the cap
    assert learn_plan.guess_stage_steps(args, {"novel": {"train": ["x" * 2_000]}}, 8, 64) < 40   # a note: a few steps
    args = learn.parse_args(["--data", "f", "--domain", "novel", "--steps", "77"])
    assert learn_plan.guess_stage_steps(args, novel, 8, 64) == 77


def test_no_naive_flag_is_in_the_help(capsys):
    with pytest.raises(SystemExit):
        learn.main(["--help"])
    assert "--no-naive" in capsys.readouterr().out


def test_parse_args_still_rejects_bad_numbers():
    with pytest.raises(SystemExit):
        learn.parse_args(["--steps", "0"])
    assert isinstance(learn.parse_args([]), argparse.Namespace)


TINY = {"vocab_size": 300, "d_model": 32, "num_layers": 1, "num_query_heads": 2, "num_kv_heads": 1, "d_ff": 64,
        "max_seq_len": 32}


def tiny_learner(strategy: str):
    """As tests/test_learner.py makes them: embeddings scaled up so that an adapter can make a sentence likely."""
    from tinygrad import Tensor

    from minimac.learner import ContinualLearner, LearnerConfig
    from minimac.model import ModelConfig, Transformer
    from minimac.tokenizer import Tokenizer
    Tensor.manual_seed(0)
    model = Transformer(ModelConfig(**TINY))
    model.token_embedding.weight.assign(model.token_embedding.weight * 10).realize()
    return ContinualLearner(model, Tokenizer(), LearnerConfig(strategy=strategy, batch_size=4, seq_len=16,
                                                              learning_rate=1e-2))


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["adapter-per-domain", "full"])
def test_quiz_answers_as_generate_does_one_by_one(strategy):
    """The demo's batched greedy quiz gives generate(temperature=0)'s text and route, prompt by prompt."""
    from minimac.learner import routing
    learner = tiny_learner(strategy)
    learner.learn_from_text("The capital of Zorbia is Quixville.\n" * 4, "facts", steps=15)
    if strategy == "adapter-per-domain":
        learner.learn_from_text("def double(x):\n    return x * 2\n\n" * 6, "code", steps=5)
    facts = [("The capital of Zorbia is", "Quixville"), ("def double(x):", "return"), ("the cat", "sat"),
             ("The capital of", "Zorbia")]
    answers = learn_quiz.quiz(learner, facts, new_tokens=5)
    for (prompt, answer), (said, ok, route) in zip(facts, answers):
        assert said == learner.generate(prompt, 5, temperature=0.0)
        assert ok == recalled(said, answer)
        ids = [learner.tokenizer.eot_id, *learner.tokenizer.encode(prompt)]
        assert route == (routing.route(learner, ids) if strategy == "adapter-per-domain" else None)
    assert len({said for said, _, _ in answers}) > 1   # not one answer for every prompt
