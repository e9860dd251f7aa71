"""Tests of benchmarks/facts.py: the recall scorer on hand-made cases, the invented facts, a tiny end-to-end run."""
import importlib.util
import json
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("facts_bench", ROOT / "benchmarks" / "facts.py")
fb = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fb)


@pytest.mark.parametrize("completion, answer, expected", [
    (" Quorvash.", "Quorvash", True),                 # the usual: a space, the answer, punctuation
    ("Quorvash", "Quorvash", True),                   # nothing after it (cut at max_new_tokens)
    ("\n  Quorvash is the capital", "Quorvash", True),  # any leading whitespace is stripped
    (" Quorvash, of course", "Quorvash", True),
    (" quorvash.", "Quorvash", False),                # case counts: a name is recalled with its capital
    (" QUORVASH", "Quorvash", False),
    (" Quorvashia.", "Quorvash", False),              # the start of a longer word is another name
    (" Quorvash_2", "Quorvash", False),
    (" Quorva", "Quorvash", False),                   # only part of it
    (" the city of Quorvash.", "Quorvash", False),    # an answer that only appears later does not count
    (" Velaria. Quorvash", "Quorvash", False),
    ("", "Quorvash", False),
    (" 1524.", "1524", True),
    (" 15240", "1524", False),                        # a longer number is another number
    (" 1524-1580", "1524", True),
    (" Kopes Kugaer.", "Kopes Kugaer", True),         # answers of several words: all of them, in order
    (" Kopes Kugar.", "Kopes Kugaer", False),
    (" Kopes", "Kopes Kugaer", False),
    (" jade, olive and coral.", "jade, olive and coral", True),
    (" jade, coral and olive.", "jade, olive and coral", False),
])
def test_recalled_on_hand_made_cases(completion, answer, expected):
    assert fb.recalled(completion, answer) is expected


def test_recalled_refuses_a_bad_answer():
    for bad in ("", " Quorvash", "Quorvash\n"):
        with pytest.raises(ValueError, match="answer must be non-empty, without surrounding whitespace"):
            fb.recalled("Quorvash", bad)


def test_facts_are_many_distinct_and_deterministic():
    facts = fb.FACTS
    assert len(facts) >= 50
    for field in ("sentence", "prompt", "question", "answer"):
        assert len({getattr(f, field) for f in facts}) == len(facts), field
    assert fb.make_facts() == facts                                   # the same facts on every call
    assert fb.make_facts(seed=19) != facts
    answers = [f.answer for f in facts]
    # no answer is the start of another (recalling one would also count for the other), none is in its prompts
    assert not any(a != b and b.startswith(a) for a in answers for b in answers)
    for f in facts:
        assert f.sentence.startswith(f.prompt + " " + f.answer)      # the verbatim prompt is the sentence's start
        assert f.question != f.prompt and f.question.startswith("Q: ") and f.question.endswith("\nA:")
        assert f.answer not in f.prompt and f.answer not in f.question
    text = fb.facts_text()
    assert text.splitlines() == [f.sentence for f in facts]
    twice = fb.facts_text(copies=3).splitlines()                     # copies: every fact 3 times, reordered
    assert sorted(twice) == sorted([f.sentence for f in facts] * 3) and twice[len(facts):] != twice[:len(facts)]
    # not one pattern: the verbatim prompts come from many templates
    assert len({f.prompt.split()[1] for f in facts}) >= 8


@pytest.mark.skipif(not os.environ.get("MINIMAC_DATA"), reason="needs MINIMAC_DATA (the real corpora)")
def test_no_answer_occurs_in_the_corpora():
    from minimac.data import load_corpus
    text = "\n".join("\n".join(load_corpus(name, "train")) for name in ("gutenberg", "tinyshakespeare", "scotus"))
    invented = [f.answer for f in fb.FACTS if not f.answer.isdigit() and "," not in f.answer]
    assert len(invented) >= 40
    assert [a for a in invented if a in text] == []


def test_bad_arguments_are_named(capsys):
    with pytest.raises(SystemExit):
        fb.parse_args(["--strategies", "lora,nonsense"])
    assert "unknown strategy ['nonsense']" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        fb.parse_args(["--facts-steps", "-1"])
    assert "--facts-steps must be >= 0" in capsys.readouterr().err
    assert fb.parse_args(["--facts-steps", "0"]).facts_steps == 0           # 0: the library's own rule
    with pytest.raises(SystemExit):
        fb.parse_args(["--set", "embedding_r=-1"])
    assert "embedding_r must be an integer >= 0" in capsys.readouterr().err
    assert fb.parse_args(["--set", "embedding_r=8"]).set == {"embedding_r": 8}
    args = fb.parse_args([])
    from minimac.learner import LearnerConfig
    assert args.strategies[0] == LearnerConfig().strategy and "full" in args.strategies


def _tiny_model():
    from tinygrad import Tensor

    from minimac.model import ModelConfig, Transformer
    Tensor.manual_seed(0)
    cfg = ModelConfig(vocab_size=257, d_model=32, num_layers=1, num_query_heads=2, num_kv_heads=1, d_ff=64,
                      max_seq_len=32)
    return cfg, Transformer(cfg)


def test_batched_greedy_matches_generate_even_past_the_context():
    """A random byte-level model: a 41-byte prompt overflows max_seq_len 32, so both slide the window."""
    from minimac.learner import ContinualLearner, LearnerConfig
    from minimac.tokenizer import Tokenizer
    learner = ContinualLearner(_tiny_model()[1], Tokenizer(), LearnerConfig(strategy="full", batch_size=2, seq_len=16))
    prompts, n = ["The capital of Velaria is a city known as", "Hi"], [2, 3]
    got = fb.greedy(learner, prompts, n)
    assert got == [learner.generate(p, k, temperature=0, top_k=None, top_p=None) for p, k in zip(prompts, n)]


def test_append_replaces_a_run_in_its_row():
    def run(strategy, steps, tag):
        return {"strategy": strategy, "facts_steps": steps, "facts_lr": 0.005, "copies": 8, "tag": tag}
    runs = fb.merge(fb.merge([], run("lora", 800, "old")), run("full", 800, "old"))
    runs = fb.merge(runs, run("lora", 800, "new"))                 # the same settings: replaced, same place
    assert [(r["strategy"], r["tag"]) for r in runs] == [("lora", "new"), ("full", "old")]
    runs = fb.merge(runs, run("lora", 2400, "new"))                # other steps: a row of its own
    assert [(r["strategy"], r["facts_steps"]) for r in runs] == [("lora", 800), ("full", 800), ("lora", 2400)]


@pytest.fixture(scope="module")
def tiny_run():
    """Two strategies through the whole protocol on a random 1-layer model: 4 facts, a few steps."""
    from tinygrad import Tensor

    from minimac.model import Transformer
    from minimac.tokenizer import Tokenizer

    cfg, model = _tiny_model()
    state = {k: v.numpy() for k, v in model.state_dict().items()}

    def make_model():
        m = Transformer(cfg)
        m.load_state_dict({k: Tensor(v) for k, v in state.items()}, strict=False)
        return m

    facts = fb.FACTS[:4]
    stream = [("a", "def f(x):\n    return x + 1\n" * 10), ("b", "the cat sat on the mat. " * 10)]
    runs = []
    for s in ("lora+replay+ewc", "adapter-per-domain"):
        runs.append(fb.run_strategy(s, make_model, Tokenizer(), stream, "a dog ran in the park. " * 20, facts_steps=3,
                                    domain_steps=2, batch_size=4, seq_len=16, say=lambda m: None, facts=facts,
                                    check=1))
    return runs, facts


@pytest.mark.slow
def test_tiny_end_to_end_gives_the_report_structure(tiny_run):
    runs, facts = tiny_run
    for r in runs:
        assert [c["domain"] for c in r["learn"]] == ["facts", "a", "b"]
        assert r["learn"][0]["steps"] == 3 and [c["steps"] for c in r["learn"][1:]] == [2, 2]
        assert all(c["seconds"] > 0 for c in r["learn"])
        for stage in ("now", "later", "loaded"):
            m = r["recall"][stage]
            assert 0 <= m["verbatim"] <= 1 and 0 <= m["paraphrase"] <= 1 and m["seconds"] > 0
            assert len(m["completions"]["verbatim"]) == len(facts) == len(m["hits"]["paraphrase"])
            assert m["verbatim"] == sum(fb.recalled(c, f.answer) for c, f in
                                        zip(m["completions"]["verbatim"], facts)) / len(facts)
        assert r["fact_recall_now"] == r["recall"]["now"]["verbatim"]
        assert r["fact_recall_later"] == r["recall"]["later"]["verbatim"]
        assert r["loaded_same_completions"] is True       # greedy: the loaded learner says exactly the same
        assert all(m["generate_agrees"] == 1.0 for m in r["recall"].values())  # batched greedy == generate
    shared, per_domain = runs
    assert "now (by name)" not in shared["recall"] and shared["recall"]["now"]["routed_to_facts"] is None
    assert set(per_domain["recall"]) == {"now", "later", "loaded", "now (by name)", "later (by name)",
                                         "loaded (by name)"}
    assert 0 <= per_domain["recall"]["later"]["routed_to_facts"] <= 1
    for r in runs:
        r.update(command="python benchmarks/facts.py x", machine="m", load=0.5)
        assert (r["facts_steps"], r["copies"]) == (3, fb.COPIES) and r["facts_lr"] > 0
    meta = {"base_folder": "toy", "n_facts": len(facts), "domains": ["a", "b"], "domain_steps": 2, "batch_size": 4,
            "seq_len": 16}
    md = fb.markdown({"meta": meta, "runs": runs})
    assert "| lora+replay+ewc | 3 |" in md and "| adapter-per-domain (by name) | 3 |" in md
    assert md.count("`python benchmarks/facts.py x` (m; load average 0.5)") == 1   # one command made both runs
    assert "routed to the facts adapter" in md
    assert len(fb.rows(runs)) == 3 and all(len(row) == len(fb.COLUMNS) for row in fb.rows(runs))
    json.dumps({"meta": meta, "runs": runs})           # the result is plain JSON
