"""What a run of `python -m minimac.learn` learns and evaluates, and how long it should take. Lesson 11.

    load_plan(args)            the base and the domains to learn, with their training text, evaluation text and
                               prompts: a corpus's domains (default: Python's docs, then its code) and, last, six
                               invented facts (FACTS, facts_text), or --data FILE
    read_data(paths)           UTF-8 text files (a folder, a missing, empty or non-UTF-8 file: an error naming it)
    eval_sample(text)          at most EVAL_CHARS characters in EVAL_PIECES pieces spread over the text: the bounded
                               set a --data domain is evaluated on after every stage
    eval_sets_for(...)         every domain the learner knows: the base, earlier ones (kept in a checkpoint), new ones
    stream_items(...)          the (domain, text) pairs and steps per stage; --data trains on all of the text, one
                               pass over its windows, up to DATA_MAX_STEPS steps, past which it trains on windows
                               drawn at random from the whole text and says exactly how many (data_steps)
    estimate(...)              seconds left, from this run's setup and one step timed now (measure_step), or else
                               from the cached base's measured compile and step times

Leaves out: the rules on files and resuming (minimac/learn_rules.py), the learning (minimac/learner/).
"""
from __future__ import annotations

import argparse
import math
import random
import time
from pathlib import Path

from rich.console import Console

from minimac.learn_quiz import QUIZ_TOKENS
from minimac.learner.mixing import chunk_ids, mixed_batch
from minimac.learner.strategies import LearnerConfig

# Six facts about an invented island. No base model can know them (the names are made up), so the demo asks for
# them before learning (wrong answers) and after (right ones). They are taught as text, written COPIES times in
# shuffled orders, and asked with the start of their own sentence: recall of what was read, not reasoning.
FACTS = (("The capital of Velmora is", "Tarsk"), ("The river of Velmora is the", "Onnel"),
         ("The king of Velmora is", "Borin"), ("The flag of Velmora is", "green"),
         ("The mountain of Velmora is Mount", "Kessa"), ("The coin of Velmora is the", "drel"))
FACTS_DOMAIN, COPIES = "facts", 6
DEMO = {"stage_steps": 40, "train_chars": 200_000, "remember_chars": 40_000, "prompt_chars": 40, "new_tokens": 24}
CURVE_EVERY = 10   # steps between two points of the curves (each point evaluates every set)
EVAL_CHARS, EVAL_PIECES = 4000, 8   # evaluation per set: 8 pieces of 500 characters, spread over the text
# The cap keeps a big text to minutes: a 1 MB novel with the nano base and the default strategy took 4m54s in all
# on the project's 2-core CPU (600 steps of ~0.3 s, 190 s of CPU) while other jobs kept its load average at 5.5-6
DATA_MAX_STEPS = 600
CHARS_PER_TOKEN = 2.4   # English with the demo's 2,048-token vocabulary (a 1 MB novel: 2.34)


def load_plan(args: argparse.Namespace) -> dict:
    """What to learn and test: {"base": name, "stream": [names], "tokenizer_docs": [[docs] per later corpus domain],
    "domains": {name: {"train": [docs], "valid": text, "prompts": [...]}}}. With --data the stream is the user's
    text only, but the base (and its tokenizer) stays the corpus's, so every --data run shares one cached base.
    A corpus domain is evaluated on the first EVAL_CHARS characters of its valid split, --data on eval_sample."""
    from minimac.data import DEFAULT_DOMAINS, load_corpus
    names = list(DEFAULT_DOMAINS) if args.corpus == "default" else [c.strip() for c in args.corpus.split(",") if c]
    if len(names) < 2 and not args.data:
        raise ValueError(f"--corpus needs a base and at least one domain to learn, got {names}")
    if args.data and args.domain in names[:1]:
        raise ValueError(f"--domain {args.domain!r} is the name of the base domain; pick another name")
    data = read_data(args.data) if args.data else None  # read first: a bad file fails fast

    def docs(name: str, split: str) -> list[str]:
        return load_corpus("default", split, domain=name) if args.corpus == "default" else load_corpus(name, split)

    learn = names[:1] if data else names
    domains = {n: {"train": docs(n, "train"), "valid": "\n\n".join(docs(n, "valid"))[:EVAL_CHARS],
                   "prompts": _prompts(docs(n, "test"))} for n in learn}
    if data:
        domains[args.domain] = {"train": [data], "valid": eval_sample(data), "prompts": _prompts(data.split("\n\n"))}
    else:   # the facts come last; the base's tokenizer never saw them (the cached base stays the same)
        domains[FACTS_DOMAIN] = {"train": [facts_text()], "valid": facts_text(copies=1),
                                 "prompts": [p for p, _ in FACTS]}
    tokenizer_docs = [domains[n]["train"] if n in domains else docs(n, "train") for n in names[1:]]
    return {"base": names[0], "domains": domains, "stream": [n for n in domains if n != names[0]],
            "tokenizer_docs": tokenizer_docs}


def facts_text(copies: int = COPIES, seed: int = 0) -> str:
    """FACTS as sentences, one a line, `copies` times in shuffled orders (the first copy in FACTS's order).

    facts_text(copies=1).splitlines()[0] -> 'The capital of Velmora is Tarsk.'
    """
    rng, lines = random.Random(seed), []
    for k in range(copies):
        order = list(FACTS)
        if k:
            rng.shuffle(order)
        lines += [f"{prompt} {answer}." for prompt, answer in order]
    return "\n".join(lines)


def _prompts(docs: list[str], n: int = 2) -> list[str]:
    """The first words (up to prompt_chars, cut at a space) of the first n non-empty documents."""
    out = []
    for d in docs:
        d = " ".join(d.split(" ")[:50]).strip()
        if d:
            cut = d[:DEMO["prompt_chars"]]
            out.append(cut[:cut.rfind(" ")] if " " in cut[8:] else cut)
        if len(out) == n:
            break
    return out


def read_data(paths: list[str]) -> str:
    return "\n".join(_read(p) for p in paths)


def _read(path: str) -> str:
    p = Path(path)
    if p.is_dir():
        raise ValueError(f"--data '{p}' is a folder; give the text files in it, e.g. --data {p}/*.txt")
    if not p.is_file():
        raise FileNotFoundError(f"--data file '{p}' does not exist")
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(f"--data file '{p}' is not UTF-8 text ({e})") from None
    if not text.strip():
        raise ValueError(f"--data file '{p}' is empty")
    return text


def eval_sample(text: str, chars: int = EVAL_CHARS, pieces: int = EVAL_PIECES) -> str:
    """The text if it is short, else `pieces` slices of chars // pieces characters at evenly spaced places.

    eval_sample("abcdefghij", chars=4, pieces=2) -> "ab\\n\\nij"
    """
    if len(text) <= chars:
        return text
    size = chars // pieces
    starts = [round(i * (len(text) - size) / (pieces - 1)) for i in range(pieces)] if pieces > 1 else [0]
    return "\n\n".join(text[s:s + size] for s in starts)


def data_steps(n_windows: int, new_rows: int, min_steps: int, steps: int | None) -> tuple[int, str]:
    """(steps, what part of the text they train on): one pass over the windows, at least min_steps, at most
    DATA_MAX_STEPS, unless --steps says otherwise."""
    one_pass = max(min_steps, math.ceil(n_windows / new_rows))
    chosen = steps or min(one_pass, DATA_MAX_STEPS)
    used = min(n_windows, chosen * new_rows)
    if used >= n_windows:
        part = f"all {n_windows:,} windows" + (f", {chosen * new_rows / n_windows:.1f} times" if chosen > one_pass
                                               else "")
    else:
        part = (f"{used:,} of its {n_windows:,} windows ({100 * used / n_windows:.0f}%), drawn at random from the whole "
                f"text" + ("" if steps else f" (at most {DATA_MAX_STEPS} steps by default; --steps {one_pass} "
                                                "for one full pass)"))
    return chosen, part


def guess_stage_steps(args: argparse.Namespace, domains: dict, batch_size: int, seq_len: int) -> int:
    """Steps a stage will take, before the tokenizer exists (the first run's estimate, while the base is built): the
    demo's, or data_steps on the text's length at CHARS_PER_TOKEN, for the learner's batch_size and seq_len
    (stream_items counts the real windows later)."""
    if not args.data:
        return args.steps or DEMO["stage_steps"]
    windows = math.ceil(len(domains[args.domain]["train"][0]) / (CHARS_PER_TOKEN * seq_len))
    return data_steps(windows, batch_size, LearnerConfig().min_steps, args.steps)[0]


def eval_sets_for(learner, plan: dict, stream: list[str]) -> dict[str, str]:
    """Every domain the learner knows is evaluated after each stage: the base, earlier ones (their text is kept in the
    checkpoint, learner.eval_sets), and this run's."""
    domains, base = plan["domains"], plan["base"]
    earlier = {d: t for d, t in learner.eval_sets.items() if d != base and d not in stream}
    return {base: domains[base]["valid"], **earlier, **{d: domains[d]["valid"] for d in stream}}


def stream_items(args, learner, stream: list[str], domains: dict, console: Console) -> tuple[list, int]:
    """(domain, text) pairs to learn and the steps per domain; with --data, says what part of the text is used."""
    if not args.data:
        return [(d, "\n\n".join(domains[d]["train"])[:DEMO["train_chars"]]) for d in stream], \
            args.steps or DEMO["stage_steps"]
    cfg, text = learner.config, domains[args.domain]["train"][0]
    n_windows = math.ceil((len(learner.encode(text)) - 1) / cfg.seq_len)
    replaying = cfg.uses_replay and len(learner.replay) > 0
    new_rows = cfg.batch_size - (cfg.replay_rows(learner.replay_ratio) if replaying else 0)
    steps, part = data_steps(n_windows, new_rows, cfg.min_steps, args.steps)
    console.print(f"{args.domain}: {len(text):,} characters, {n_windows:,} windows of {cfg.seq_len} tokens; training "
                  f"on {part}: {steps:,} steps of {new_rows} new windows each")
    return [(args.domain, text)], steps


def naive_contrast(args: argparse.Namespace, strategy: str) -> bool:
    """Does this run add naive full fine-tuning for contrast? The demo does (not with --data, --resume, --no-naive
    or --strategy full itself)."""
    return not (args.data or args.resume or args.no_naive or strategy == "full")


def tokens_generated(args: argparse.Namespace, stream: list[str]) -> int:
    """Tokens generated in all: the facts asked before and after (by both learners), or --data's prompts."""
    quiz = 3 * len(FACTS) * QUIZ_TOKENS if FACTS_DOMAIN in stream else 0
    return quiz + (4 * DEMO["new_tokens"] if args.data else 0)


def evaluating(sets: dict[str, str]) -> str:
    return (f"evaluating bits per byte on {len(sets)} set(s), {', '.join(sets)}: at most {EVAL_CHARS:,} characters "
            f"each ({sum(map(len, sets.values())):,} in all)")


def measure_step(learner) -> float | None:
    """Seconds of one replayed training step, timed now: on a shared CPU the speed of the moment, not that of the day
    the base was built. It runs through StepTrainer.fisher (lr 0, EWC off, the state put back), so nothing moves.
    None when no step has been compiled yet (only the EWC strategies compile it before learning, for the Fisher)."""
    trainers = [t for t in learner._trainers.values() if t.ewc is not None]
    if not trainers:
        return None
    cfg = learner.config
    chunk = chunk_ids(learner.encode("time one step " * cfg.seq_len), cfg.seq_len)[0]
    batch = mixed_batch([chunk], [], cfg.batch_size, cfg.seq_len, 0.0)
    trainers[0].fisher([batch])     # the replayed kernels are warm after this one
    seconds = []
    for n in (1, 3):                # the difference leaves out fisher's own work (saving and restoring the state)
        start = time.perf_counter()
        trainers[0].fisher([batch] * n)
        seconds.append(time.perf_counter() - start)
    return max(seconds[1] - seconds[0], 1e-3) / 2


def estimate(t: dict, setup_s: float | None, step_s: float | None, stages: int, steps: int, evals: int,
             tokens: int, per_domain: bool, naive: bool = False, base_built: bool = False) -> float:
    """Seconds for what is left of the run, after the base.

    `t`: the base's timings (base_cache: `first_steps_s`, its compile, c; `pretrain_step_s`, one pretraining step,
    s); `setup_s`: this run's setup if it compiled the learner's step (the EWC strategies' Fisher), and `step_s` one
    learner step timed now (measure_step). `evals`: sets evaluated at the stages' ends. Ratios from the demo's first
    run with fresh caches (nano, 2-core CPU, load 1.6-2.9; 2m46s estimated, 2m54s taken): the learner's step
    compiles in ~0.5 c, each stage's new jit (and adapter) ~0.1 c; a learner step with its host work and the curves'
    evaluations every CURVE_EVERY steps ~3.5 s (or 1.5 step_s); a set evaluated ~1.5 s; a generated token ~0.15 s.
    `naive` (the full fine-tuning run for contrast) compiles in ~0.2 c when the base was built in this process
    (`base_built`: its kernels are warm), ~0.55 c in a later run, and steps at ~1.5 s. Saving and the rest ~3 s.
    A machine that gets busier takes longer: the live ETA of each stage follows the pace of its own steps.
    """
    c = t.get("first_steps_s", 60.0)
    s = t.get("pretrain_step_s", 1.0)
    learner_step = 1.5 * step_s if step_s else 3.5 * s
    learner = ((0.0 if setup_s else 0.5 * c) + stages * (0.1 if per_domain else 0.05) * c
               + stages * steps * learner_step + evals * 1.5 * s)
    contrast = (0.2 if base_built else 0.55) * c + stages * steps * 1.5 * s + evals * 1.5 * s if naive else 0.0
    return learner + contrast + tokens * 0.15 * s + 3.0
