"""Fact recall: does the continual learner learn made-up facts from one `learn_from_text` call, and keep them?

    MINIMAC_DATA=../shared/data python benchmarks/facts.py                 # quick: nano base, 2-core CPU
    MINIMAC_DATA=../shared/data python benchmarks/facts.py --full          # the tiny base (a GPU)
    python benchmarks/facts.py --strategies lora+replay+ewc --facts-lr 1e-2 --append   # one more row

FACTS: 60 invented facts (names from a seeded syllable generator, so no base model can know them; a test checks
that no answer occurs in the corpora under MINIMAC_DATA) from 12 templates (capitals, inventors, birth years,
rivers, flags, novels, mountains, coins, founders, elements, dialling codes, dishes). Each has a verbatim prompt
("The capital of Velaria is"), a paraphrased question ("Q: What city is the capital of Velaria?\\nA:") and an
answer ("Quorvash"). Recall: the share of facts whose greedy completion `recalled` the answer, per prompt form.

Protocol (`run_recall`, callable by the forgetting benchmark for its fact_recall_now / _later): the forgetting
benchmark's cached base (minimac/base_cache.py) remembers base text (replay / EWC), learns the facts in ONE call
(domain "facts"), consolidates; recall "now"; learns Tiny Shakespeare then SCOTUS (the forgetting benchmark's steps
per stage); recall "later"; save_checkpoint + load_checkpoint; recall "loaded". adapter-per-domain routes each
prompt as generate(domain=None) does, and is also scored with domain="facts" ("by name"), so routing errors show.

Why the text holds the facts COPIES = 8 times, in shuffled orders: learn_from_text cuts its text into fixed
windows of 64 tokens, so a fact written once is always learned after the same neighbours, and the model leans on
them; a recall prompt has none. Written once, full fine-tuning drove the facts' loss to 0.02 nats and recalled 13%
of them; in 8 shuffled copies, 88% (docs/forgetting.md, "Fact recall").
Why FACTS_STEPS = 800 (the library's own rule gives max(30, one pass): 30 steps for full, 44 with replay): 8 x 60
sentences are ~11,000 tokens, ~175 windows; 800 steps of 8 rows are ~36 passes for full fine-tuning (~18 for the
replay strategies, which give half of each batch to replay). Memorising an invented name to the argmax takes tens
of passes: full fine-tuning still recalls only 88% after 800 steps. Goal: >= 90% verbatim now, >= 80% later, for
the default strategy (met on the quick base since the default adapter has an embedding delta: 98%; see the docs).
The library's own rule (`--facts-steps 0`: one pass, at least min_steps) is far too few steps for this text.
Leaves out: several seeds, teaching the paraphrases (recall of a question is generalisation, not memory).
"""
from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import platform
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from minimac.learn_quiz import greedy, recalled  # the demo's quiz and this benchmark share them

GOAL_NOW, GOAL_LATER = 0.9, 0.8
DOMAIN = "facts"
COPIES = 8  # the facts are written this many times, in shuffled orders (see the module doc)
CONTRASTS = ("full", "lora+replay+ewc", "full+replay+ewc", "adapter-per-domain")
FACTS_STEPS = 800  # see the module doc
KEY = ("strategy", "facts_steps", "facts_lr", "copies", "set")  # what tells runs apart in --append


class Fact(NamedTuple):
    sentence: str    # what is taught: "The capital of Velaria is Quorvash."
    prompt: str      # the verbatim prompt: "The capital of Velaria is"
    question: str    # the paraphrase: "Q: What city is the capital of Velaria?\nA:"
    answer: str      # "Quorvash"


# (sentence, verbatim prompt, question); {s} = the subject, {a} = the answer; kinds: what to invent for each
TEMPLATES = (
    ("place", "city", "The capital of {s} is {a}.", "The capital of {s} is", "What city is the capital of {s}?"),
    ("thing", "person", "The {s} engine was invented by {a}.", "The {s} engine was invented by",
     "Who invented the {s} engine?"),
    ("person", "year", "{s} was born in the year {a}.", "{s} was born in the year", "In which year was {s} born?"),
    ("place", "river", "The longest river in {s} is {a}.", "The longest river in {s} is",
     "Which river is the longest in {s}?"),
    ("place", "colours", "The flag of {s} has three stripes: {a}.", "The flag of {s} has three stripes:",
     "What colours are on the flag of {s}?"),
    ("person", "title", "{s} wrote the novel {a}.", "{s} wrote the novel", "Which novel did {s} write?"),
    ("mountain", "height", "Mount {s} is {a} metres high.", "Mount {s} is", "How many metres high is Mount {s}?"),
    ("place", "coin", "People in {s} pay with coins called {a}.", "People in {s} pay with coins called",
     "What are the coins of {s} called?"),
    ("city", "person", "The founder of {s} was {a}.", "The founder of {s} was", "Who founded the city of {s}?"),
    ("person", "element", "{s} discovered the element {a}.", "{s} discovered the element",
     "Which element did {s} discover?"),
    ("city", "code", "The dialling code of {s} is {a}.", "The dialling code of {s} is",
     "What number do you dial for {s}?"),
    ("person", "dish", "The favourite dish of {s} is {a}.", "The favourite dish of {s} is",
     "What does {s} like to eat most?"),
)
ONSETS = ("b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "br", "dr", "gr", "kr", "tr", "th",
          "qu", "sh")
VOWELS = ("a", "e", "i", "o", "u", "ae", "ou", "y")  # after "qu" no "u": see _word
CODAS = ("n", "r", "s", "l", "th", "x", "sh", "nd", "m", "v", "k")
COLOURS = ("amber", "teal", "violet", "crimson", "ochre", "silver", "indigo", "saffron", "olive", "coral", "ivory",
           "cobalt", "maroon", "jade", "umber")


def _word(rng: random.Random, syllables: int, ending: str = "") -> str:
    """An invented word: open syllables, a closed last one: _word(rng, 2) -> e.g. 'Quorvash'."""
    body = ""
    for _ in range(syllables):
        onset = rng.choice(ONSETS)
        body += onset + rng.choice(VOWELS[:4] + VOWELS[5:] if onset == "qu" else VOWELS)
    return (body + (ending or rng.choice(CODAS))).capitalize()


def _invent(kind: str, rng: random.Random) -> str:
    if kind == "person":
        return f"{_word(rng, 2)} {_word(rng, rng.choice((2, 3)))}"
    if kind in ("year", "height", "code"):
        return str(rng.randrange(*{"year": (1400, 1900), "height": (2000, 8000), "code": (100, 1000)}[kind]))
    if kind == "colours":
        a, b, c = rng.sample(COLOURS, 3)
        return f"{a}, {b} and {c}"
    if kind == "title":
        return f"The {rng.choice(('Glass', 'Lantern', 'Orchard', 'Winter', 'Salt', 'Harbour'))} of {_word(rng, 2)}"
    if kind == "dish":
        return f"{_word(rng, 2).lower()} {rng.choice(('stew', 'pie', 'soup', 'bread', 'cake'))}"
    ending = {"place": ("ia", "ania", "esh", "or", "und"), "element": ("ium",), "coin": ("s",)}.get(kind)
    w = _word(rng, rng.choice((2, 3)), ending and rng.choice(CODAS[:5]) + rng.choice(ending))
    return w.lower() if kind in ("coin", "element") else w  # common nouns: invented, but in lower case


def make_facts(per_template: int = 5, seed: int = 18) -> list[Fact]:
    """per_template facts from each template, every invented name used once; shuffled (same seed, same facts)."""
    rng, used, facts = random.Random(seed), set(), []

    def fresh(kind: str) -> str:
        while True:
            name = _invent(kind, rng)
            # distinct, and no name is a prefix of another (then recalling one would also "recall" the other)
            if not any(name.startswith(u) or u.startswith(name) for u in used):
                used.add(name)
                return name
    for subject_kind, answer_kind, sentence, prompt, question in TEMPLATES:
        for _ in range(per_template):
            s, a = fresh(subject_kind), fresh(answer_kind)
            facts.append(Fact(sentence.format(s=s, a=a), prompt.format(s=s), f"Q: {question.format(s=s)}\nA:", a))
    rng.shuffle(facts)
    return facts


FACTS = make_facts()


def facts_text(facts: list[Fact] = FACTS, copies: int = 1, seed: int = 0) -> str:
    """The text taught: one sentence per line; `copies` times, each copy after the first in another order."""
    rng, lines = random.Random(seed), []
    for k in range(copies):
        lines += rng.sample(facts, len(facts)) if k else list(facts)
    return "\n".join(f.sentence for f in lines) + "\n"


def measure_recall(learner, facts: list[Fact] = FACTS, domain: str | None = None, check: int = 2) -> dict:
    """Greedy completions of every fact's verbatim prompt and question: {"verbatim", "paraphrase" (shares
    recalled), "seconds", "routed_to_facts" (adapter-per-domain, automatic routing: share of prompts the router
    sent to the facts adapter), "generate_agrees" (the first `check` verbatim prompts through learner.generate give
    the same completions), "completions", "hits"}. domain=None routes each prompt as learner.generate does
    (learner.route, adapter-per-domain only); a name routes by name."""
    from minimac.learner import routing
    t0 = time.perf_counter()
    prompts = [f.prompt for f in facts] + [f.question for f in facts]
    n = [len(learner.tokenizer.encode(" " + f.answer)) + 2 for f in facts] * 2  # slack: another tokenization
    routes = [None] * len(prompts)
    if learner.config.per_domain:
        routes = [learner.route(p) for p in prompts] if domain is None else [domain] * len(prompts)
    completions = [""] * len(prompts)
    for route in dict.fromkeys(routes):
        rows = [i for i, r in enumerate(routes) if r == route]
        with routing.using(learner, route) if learner.config.per_domain else contextlib.nullcontext():
            for i, c in zip(rows, greedy(learner, [prompts[i] for i in rows], [n[i] for i in rows])):
                completions[i] = c
    same = [learner.generate(prompts[i], n[i], temperature=0, top_k=None, top_p=None, domain=domain) == completions[i]
            for i in range(min(check, len(facts)))]
    out = {"verbatim": completions[:len(facts)], "paraphrase": completions[len(facts):]}
    hits = {form: [recalled(c, f.answer) for c, f in zip(out[form], facts)] for form in out}
    return {"verbatim": sum(hits["verbatim"]) / len(facts), "paraphrase": sum(hits["paraphrase"]) / len(facts),
            "seconds": time.perf_counter() - t0, "generate_agrees": sum(same) / len(same) if same else None,
            "routed_to_facts": sum(r == DOMAIN for r in routes) / len(routes) if learner.config.per_domain and
            domain is None else None, "completions": out, "hits": hits}


def teach_facts(learner, facts: list[Fact] = FACTS, steps: int | None = None, lr: float | None = None,
                copies: int = COPIES) -> dict:
    """One learn_from_text call on facts_text(facts, copies) (domain "facts"; lr, if given, for this call only),
    then consolidate."""
    before = learner.learning_rate
    if lr is not None:
        learner.set_learning_rate(lr)
    try:
        res = learner.learn_from_text(facts_text(facts, copies), DOMAIN, steps=steps)
    finally:
        learner.set_learning_rate(before)
    learner.consolidate(DOMAIN)
    return res


def run_recall(learner, stream: list[tuple[str, str]] = (), facts: list[Fact] = FACTS, steps: int | None = None,
               domain_steps: int | None = None, lr: float | None = None, copies: int = COPIES, save: bool = True,
               check: int = 2, say=print) -> dict:
    """The whole protocol on a learner that already knows its base: teach, recall now, learn `stream` ((domain,
    text) pairs), recall later, save + load, recall loaded. {"fact_recall_now", "fact_recall_later" (verbatim
    shares), "learn" [per call], "recall" {stage: measure_recall(...)}}; adapter-per-domain adds "<stage> (by name)"."""
    from minimac.learner import ContinualLearner
    learn, recall = [], {}

    def measure(stage: str, who) -> None:
        recall[stage] = measure_recall(who, facts, check=check)
        if who.config.per_domain:
            recall[stage + " (by name)"] = measure_recall(who, facts, DOMAIN, check)
        say(f"  recall {stage}: verbatim {recall[stage]['verbatim']:.0%}, paraphrase {recall[stage]['paraphrase']:.0%}"
            f" ({recall[stage]['seconds']:.0f}s)")
    learn.append(_call(teach_facts(learner, facts, steps, lr, copies)))
    say(f"  facts: loss {learn[-1]['loss_before']:.2f} -> {learn[-1]['loss_after']:.2f} in {learn[-1]['seconds']:.0f}s")
    measure("now", learner)
    for domain, text in stream:
        learn.append(_call(learner.learn_from_text(text, domain, steps=domain_steps)))
        learner.consolidate(domain)
    measure("later", learner)
    out = {"learn": learn, "recall": recall}
    if save:
        with tempfile.TemporaryDirectory(prefix="minimac-facts-") as tmp:
            t0 = time.perf_counter()
            learner.save_checkpoint(tmp)
            loaded = ContinualLearner.load_checkpoint(tmp)
            out["save_load_seconds"] = time.perf_counter() - t0
        measure("loaded", loaded)
        out["loaded_same_completions"] = recall["loaded"]["completions"] == recall["later"]["completions"]
    return {"fact_recall_now": recall["now"]["verbatim"], "fact_recall_later": recall["later"]["verbatim"], **out}


def _call(res: dict) -> dict:
    return {k: res[k] for k in ("domain", "steps", "examples", "tokens", "loss_before", "loss_after", "seconds")}


def _forgetting_benchmark():
    """benchmarks/forgetting.py as a module: its quick / full plans give the same cached base and domain texts."""
    spec = importlib.util.spec_from_file_location("forgetting_bench", ROOT / "benchmarks" / "forgetting.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_strategy(strategy: str, make_model, tokenizer, stream: list[tuple[str, str]], base_text: str,
                 facts_steps: int, domain_steps: int, batch_size: int = 8, seq_len: int = 64, lr: float | None = None,
                 seed: int = 0, say=print, facts: list[Fact] = FACTS, copies: int = COPIES, check: int = 2,
                 overrides: dict | None = None, tag: str = "") -> dict:
    """One strategy: a fresh learner on make_model() remembers base_text (as the forgetting benchmark), then
    run_recall. `overrides`: more LearnerConfig fields (--set). facts_steps 0: the library's own rule for the
    number of steps. {"strategy", "facts_steps", "facts_lr", "copies", "set", "wall_s", **run_recall(...)}."""
    from tinygrad import Tensor

    from minimac.learner import ContinualLearner, LearnerConfig
    Tensor.manual_seed(seed)  # the same LoRA init for every strategy
    config = LearnerConfig(**{"strategy": strategy, "batch_size": batch_size, "seq_len": seq_len, "seed": seed,
                              "fisher_samples": 16, **(overrides or {})})
    learner = ContinualLearner(make_model(), tokenizer, config)
    learner.remember(base_text, "base")
    learner.consolidate("base")
    say(f"{strategy}: {facts_steps} steps, lr {lr or config.lr:g}, {copies} copies")
    t0 = time.perf_counter()
    out = run_recall(learner, stream, facts, steps=facts_steps or None, domain_steps=domain_steps, lr=lr,
                     copies=copies, check=check, say=say)
    label = strategy + (f" ({tag})" if tag else "")
    return {"strategy": label, "facts_steps": out["learn"][0]["steps"] if not facts_steps else facts_steps,
            "facts_lr": lr or config.lr, "copies": copies, "set": tag, "wall_s": time.perf_counter() - t0, **out}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    from minimac.learner import STRATEGIES, LearnerConfig
    default = list(dict.fromkeys([LearnerConfig().strategy, *CONTRASTS]))
    p = argparse.ArgumentParser(prog="benchmarks/facts.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--full", action="store_true", help="the forgetting benchmark's full base (tiny preset) and "
                   "domain steps, for a GPU; default: its quick mode (nano base, a 2-core CPU)")
    p.add_argument("--strategies", default=",".join(default), help=f"comma-separated, of {STRATEGIES}")
    p.add_argument("--facts-steps", type=int, default=FACTS_STEPS, help=f"steps of the facts call ({FACTS_STEPS}; "
                   "0 = the library's own rule, LearnerConfig.default_steps)")
    p.add_argument("--set", dest="overrides", default="", help="more LearnerConfig fields for every run, as "
                   "benchmarks/forgetting.py's --set: r=24,embedding_r=32,output_bias=true")
    p.add_argument("--tag", help="name the runs 'STRATEGY (TAG)' (default: the --set text)")
    p.add_argument("--facts-lr", type=float, help="learning rate of the facts call only (default: the strategy's)")
    p.add_argument("--copies", type=int, default=COPIES, help=f"facts written this many times ({COPIES}; 1 = once)")
    p.add_argument("--domain-steps", type=int, help="steps per later domain (default: the forgetting benchmark's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="results", help="folder for facts.json / facts.md (--full: facts_full.*)")
    p.add_argument("--append", action="store_true", help="keep the other runs of an earlier result with the same "
                   "base, domains and domain steps (a run with the same strategy, steps, lr and copies is replaced)")
    args = p.parse_args(argv)
    args.strategies = [s.strip() for s in args.strategies.split(",") if s.strip()]
    if bad := [s for s in args.strategies if s not in STRATEGIES] or not args.strategies:
        p.error(f"unknown strategy {bad or args.strategies}; choose from {STRATEGIES}")
    if args.facts_steps < 0:
        p.error(f"--facts-steps must be >= 0, got {args.facts_steps}")
    try:
        args.set = _forgetting_benchmark().parse_overrides(args.overrides)
    except ValueError as e:
        p.error(str(e))
    args.tag = args.overrides if args.tag is None else args.tag
    for name in ("facts_lr", "domain_steps", "copies"):
        if (v := getattr(args, name)) is not None and not v > 0:
            p.error(f"--{name.replace('_', '-')} must be positive, got {v}")
    return args


COLUMNS = ("strategy", "facts steps", "facts lr", "copies", "now verbatim", "now paraphrase", "later verbatim",
           "later paraphrase", "loaded verbatim", "save+load same", "s / facts call", "s / domain call",
           "s / recall pass", "goal")


def rows(runs: list[dict]) -> list[list[str]]:
    out = []
    for r in runs:
        rec, learn = r["recall"], r["learn"]
        for tag in [t for t in ("", " (by name)") if "now" + t in rec]:
            now, later, loaded = (rec[s + tag] for s in ("now", "later", "loaded"))
            out.append([r["strategy"] + tag, str(r["facts_steps"]), f"{r['facts_lr']:g}", str(r["copies"]),
                        *(f"{m[form]:.0%}" for m in (now, later) for form in ("verbatim", "paraphrase")),
                        f"{loaded['verbatim']:.0%}", "yes" if r["loaded_same_completions"] else "no",
                        f"{learn[0]['seconds']:.0f}",
                        f"{sum(c['seconds'] for c in learn[1:]) / max(len(learn) - 1, 1):.0f}",
                        f"{sum(m['seconds'] for m in rec.values()) / len(rec):.0f}",
                        "yes" if now["verbatim"] >= GOAL_NOW and later["verbatim"] >= GOAL_LATER else "no"])
    return out


def markdown(result: dict) -> str:
    m, runs = result["meta"], result["runs"]
    commands = dict.fromkeys(f"`{r['command']}` ({r['machine']}; load average {r['load']:.1f})  " for r in runs)
    setup = (f"Base: {m['base_folder']}; {m['n_facts']} invented facts taught in one learn_from_text call, then "
             f"{' and '.join(m['domains'])} at {m['domain_steps']} steps each; batch {m['batch_size']} x "
             f"{m['seq_len']} tokens")
    legend = ("Recall = share of facts whose greedy completion starts with the answer (benchmarks/facts.py "
              "`recalled`), for the verbatim prompt and the paraphrased question; now = right after the facts call, "
              "later = after the two domains, loaded = after save_checkpoint + load_checkpoint. adapter-per-domain "
              "routes each prompt automatically; its \"(by name)\" row uses the facts adapter. Copies: the facts "
              f"written that many times in shuffled orders. Goal: >= {GOAL_NOW:.0%} verbatim now, "
              f">= {GOAL_LATER:.0%} later.")
    lines = ["# Fact recall", "", "Commands (machine; 1-min load average at the start):  ", *commands, setup, "",
             legend, "", "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(row) + " |" for row in rows(runs)]
    for r in runs:
        if r["recall"]["now"]["routed_to_facts"] is not None:
            lines += ["", f"{r['strategy']} ({r['facts_steps']} steps): prompts routed to the facts adapter: " +
                      ", ".join(f"{s} {r['recall'][s]['routed_to_facts']:.0%}" for s in ("now", "later", "loaded"))]
    return "\n".join(lines) + "\n"


def merge(runs: list[dict], run: dict) -> list[dict]:
    """runs with `run` added; a run with the same KEY (strategy, steps, lr, copies) is replaced in its row."""
    same = [i for i, r in enumerate(runs) if all(r.get(k, "") == run.get(k, "") for k in KEY)]
    return [run if i == (same or [-1])[0] else r for i, r in enumerate(runs)] + ([] if same else [run])


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from tinygrad import Device

    from minimac.base_cache import BaseSpec, cached_base
    from minimac.checkpoint import load as load_model
    from minimac.tokenizer import Tokenizer
    load, wall = os.getloadavg()[0], time.perf_counter()
    fb = _forgetting_benchmark()
    plan = fb.load_plan(fb.parse_args([] if args.full else ["--quick"]))
    mode = fb.FULL if args.full else fb.QUICK
    spec = BaseSpec(preset=mode["preset"], base_steps=mode["base_steps"])
    folder, _ = cached_base(spec, plan["base_docs"], list(plan["tok_docs"].values()))
    stream = [(d, plan["train"][d]) for d in plan["domains"][:2]]
    meta = {"base_folder": folder.name, "preset": spec.preset, "n_facts": len(FACTS), "domains": [d for d, _ in stream],
            "domain_steps": args.domain_steps or mode["steps"], "batch_size": spec.batch_size,
            "seq_len": spec.seq_len, "seed": args.seed, "goal": {"now": GOAL_NOW, "later": GOAL_LATER}}
    path = Path(args.out) / ("facts_full.json" if args.full else "facts.json")
    runs = []
    if args.append and path.is_file():
        old = json.loads(path.read_text())
        if old["meta"] != meta:
            raise ValueError(f"--append: {path} was made with other settings ({old['meta']}); drop --append")
        runs = old["runs"]
    command = "python benchmarks/facts.py " + " ".join(sys.argv[1:] if argv is None else argv)
    command = ("MINIMAC_DATA=... " if os.environ.get("MINIMAC_DATA") else "") + command.strip()
    machine = f"{platform.platform()}, {os.cpu_count()} CPU cores, tinygrad device {Device.DEFAULT}"
    tokenizer = Tokenizer.load(folder / "tokenizer")
    base_text = "\n\n".join(plan["base_docs"])[:40_000]  # as the forgetting benchmark's remember_chars
    for s in args.strategies:
        run = run_strategy(s, lambda: load_model(folder), tokenizer, stream, base_text, args.facts_steps,
                           meta["domain_steps"], spec.batch_size, spec.seq_len, args.facts_lr, args.seed,
                           copies=args.copies, overrides=args.set, tag=args.tag)
        runs = merge(runs, {**run, "command": command, "machine": machine, "load": load})
    result = {"meta": meta, "runs": runs}
    path.parent.mkdir(parents=True, exist_ok=True)
    for file, text in ((path, json.dumps(result, indent=1)), (path.with_suffix(".md"), markdown(result))):
        tmp = file.with_name(f".{file.name}.tmp")
        tmp.write_text(text)
        os.replace(tmp, file)
    print(markdown(result) + f"\nwrote {path} and {path.with_suffix('.md')} in {time.perf_counter() - wall:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
