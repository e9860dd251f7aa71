"""The facts asked in `python -m minimac.learn`: before learning, then of the learner and of the naive one. Lesson 11.

    quiz(learner, facts)         each fact's prompt completed greedily, all at once (greedy), routed as `generate`
                                 routes: (completion, recalled?, route) per fact
    greedy(learner, prompts, n)  greedy completions of several prompts in one batch, equal to generate(temperature=0)
    recalled(completion, answer) the completion starts with the answer
    quiz_table(facts, answers)   the facts and each learner's answers, ticked or crossed

Leaves out: the facts themselves (FACTS in minimac/learn_plan.py), sampling (minimac/generate.py).
"""
from __future__ import annotations

import contextlib

from rich.table import Table
from rich.text import Text


def recalled(completion: str, answer: str) -> bool:
    """The completion starts with the answer (spaces around it ignored): recalled(' Tarsk.\\nThe', 'Tarsk') -> True."""
    return completion.strip().startswith(answer)


def quiz(learner, facts, new_tokens: int = 6) -> list[tuple[str, bool, str | None]]:
    """(completion, recalled?, route) for each (prompt, answer): greedy, routed as `learner.generate` routes
    (adapter-per-domain: the adapter the router picks, or None for the bare base). See `greedy`."""
    from minimac.learner import routing
    ids = [[learner.tokenizer.eot_id, *learner.tokenizer.encode(p)] for p, _ in facts]
    routes = routing.route_many(learner, ids) if learner.config.per_domain else [None] * len(ids)
    said: dict[int, str] = {}
    for route in dict.fromkeys(routes):
        rows = [i for i, r in enumerate(routes) if r == route]
        with routing.using(learner, route) if learner.config.per_domain else contextlib.nullcontext():
            said.update(zip(rows, greedy(learner, [ids[i] for i in rows], new_tokens)))
    return [(said[i], recalled(said[i], answer), routes[i]) for i, (_, answer) in enumerate(facts)]


def greedy(learner, prompts: list[list[int]], new_tokens: int) -> list[str]:
    """Greedy completions of several prompts (token ids) at once, as generate(temperature=0) makes them one by one.

    Each new token runs the model on the whole (batch_size, seq_len) window, prompts left-aligned and zero-padded
    (causal attention: the padding after a prompt never reaches it), and takes the argmax after each prompt's last
    token. No KV cache: for a few tokens, the decoding kernels it would compile cost more than it saves; this forward
    is the one evaluation has already compiled. A prompt too long for the window goes through learner.generate."""
    import numpy as np
    from tinygrad import Context, Tensor, TinyJit

    from minimac.jit_cache import cached_jit
    cfg, model, tok = learner.config, learner.model, learner.tokenizer
    B, T = cfg.batch_size, cfg.seq_len
    out: list[list[int]] = [[] for _ in prompts]
    fits = [i for i, p in enumerate(prompts) if len(p) + new_tokens <= T]
    Tensor.realize(*model.parameters())  # the jit's key must see real buffers
    step = cached_jit(model, ("argmax", B, T), lambda ref: TinyJit(lambda x: ref()(x).argmax(-1).realize()))
    for start in range(0, len(fits), B):
        rows = fits[start:start + B]
        x, n, done = np.zeros((B, T), dtype=np.int32), [len(prompts[i]) for i in rows], [False] * len(rows)
        for j, i in enumerate(rows):
            x[j, :n[j]] = prompts[i]
        for _ in range(new_tokens):
            with Context(TRAINING=0):
                picked = step(Tensor(x)).numpy()
            for j, i in enumerate(rows):
                token = int(picked[j, n[j] - 1])
                done[j] = done[j] or token == tok.eot_id
                if not done[j]:
                    out[i].append(token)
                    x[j, n[j]], n[j] = token, n[j] + 1
    texts = [tok.decode(ids, skip_special_tokens=True) for ids in out]
    for i in set(range(len(prompts))) - set(fits):
        texts[i] = learner.generate(tok.decode(prompts[i][1:]), new_tokens, temperature=0.0)
    return texts


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
