"""The facts asked in `python -m minimac.learn`: before learning, then of the learner and of the naive one. Lesson 11.

    quiz(learner, facts)         each fact's prompt completed greedily, all at once (greedy), routed as `generate`
                                 routes: (completion, recalled?, route) per fact
    greedy(learner, prompts, n)  greedy completions of several prompts in one batch, equal to generate(temperature=0)
    recalled(completion, answer) the completion states the answer first
(greedy and recalled serve the fact-recall benchmark too: benchmarks/facts.py)
    quiz_table(facts, answers)   the facts and each learner's answers, ticked or crossed

Leaves out: the facts themselves (FACTS in minimac/learn_plan.py), sampling (minimac/generate.py).
"""
from __future__ import annotations

import contextlib

from rich.table import Table
from rich.text import Text

QUIZ_TOKENS = 6   # tokens a fact's prompt is completed with: its answer and a little after


def recalled(completion: str, answer: str) -> bool:
    """Whether a completion states the answer first: after stripping leading whitespace it starts with the answer,
    exactly (case and punctuation inside the answer count), and the answer is not the start of a longer word.

    >>> recalled(" Quorvash.", "Quorvash"), recalled("Quorvash", "Quorvash"), recalled(" quorvash.", "Quorvash")
    (True, True, False)
    >>> recalled(" Quorvashia.", "Quorvash"), recalled(" the city Quorvash", "Quorvash"), recalled("", "Quorvash")
    (False, False, False)
    """
    if not answer or answer != answer.strip():
        raise ValueError(f"answer must be non-empty, without surrounding whitespace, got {answer!r}")
    text = completion.lstrip()
    if not text.startswith(answer):
        return False
    rest = text[len(answer):]
    return not rest or not (rest[0].isalnum() or rest[0] == "_")


def greedy(learner, prompts: list[str], new_tokens: list[int]) -> list[str]:
    """Greedy (argmax) completions of many prompts at once, with the model as it is now (the route already chosen).

    Each new token is the argmax after the row's last max_seq_len tokens (positions from 0), as in generate's
    sliding window, and a row stops after end-of-text: the same tokens as `learner.generate(p, n, temperature=0)`
    (tests/test_facts_benchmark.py checks it, past the context too). One jitted forward pass of the whole
    right-padded batch per new token, no KV cache: for a few tokens of many prompts that is less to compile.
    """
    import numpy as np
    from tinygrad import Context, Tensor, TinyJit

    from minimac.jit_cache import cached_jit
    tok, model = learner.tokenizer, learner.model
    seqs = [[tok.eot_id, *tok.encode(p)] for p in prompts]
    L = model.config.max_seq_len
    width = min(L, max(len(s) + n - 1 for s, n in zip(seqs, new_tokens)))
    Tensor.realize(*model.parameters())  # the jit's key needs real buffers (minimac/jit_cache.py)
    step = cached_jit(model, ("greedy", len(seqs), width), lambda ref: TinyJit(lambda t: ref()(t).argmax(-1).realize()))
    out: list[list[int]] = [[] for _ in seqs]
    for _ in range(max(new_tokens)):
        x = np.full((len(seqs), width), tok.eot_id, dtype=np.int32)
        for r, s in enumerate(seqs):
            window = (s + out[r])[-width:]
            x[r, :len(window)] = window
        with Context(TRAINING=0):
            best = step(Tensor(x)).numpy()                               # (N, width): argmax after each position
        for r, s in enumerate(seqs):
            if len(out[r]) < new_tokens[r] and (not out[r] or out[r][-1] != tok.eot_id):
                out[r].append(int(best[r, min(len(s) + len(out[r]), width) - 1]))
    return [tok.decode(o, skip_special_tokens=True) for o in out]


def quiz(learner, facts, new_tokens: int = QUIZ_TOKENS) -> list[tuple[str, bool, str | None]]:
    """(completion, recalled?, route) for each (prompt, answer): greedy, routed as `learner.generate` routes
    (adapter-per-domain: the adapter the router picks, or None for the bare base). See `greedy`."""
    from minimac.learner import routing
    ids = [[learner.tokenizer.eot_id, *learner.tokenizer.encode(p)] for p, _ in facts]   # as generate sees them
    routes = routing.route_many(learner, ids) if learner.config.per_domain else [None] * len(ids)
    said: dict[int, str] = {}
    for route in dict.fromkeys(routes):
        rows = [i for i, r in enumerate(routes) if r == route]
        with routing.using(learner, route) if learner.config.per_domain else contextlib.nullcontext():
            said.update(zip(rows, greedy(learner, [facts[i][0] for i in rows], [new_tokens] * len(rows))))
    return [(said[i], recalled(said[i], answer), routes[i]) for i, (_, answer) in enumerate(facts)]


def quiz_table(facts, answers: dict[str, list[tuple[str, bool, str | None]]]) -> Table:
    """A row per fact: the prompt, the right answer, and each learner's answer ticked or crossed, with the count."""
    table = Table(title="the facts, asked (greedy completion of the prompt)", title_justify="left")
    table.add_column("prompt")
    table.add_column("answer")
    for label, rows in answers.items():
        table.add_column(f"{label}: {sum(ok for _, ok, _ in rows)}/{len(rows)}")
    for i, (prompt, answer) in enumerate(facts):
        cells = [Text.assemble(("✓ " if rows[i][1] else "✗ ", "green" if rows[i][1] else "red"),
                               repr(rows[i][0].strip().split("\n")[0])) for rows in answers.values()]
        table.add_row(prompt, answer, *cells)
    return table
