"""A small pretrained base model for the demos, built once and cached: tokenizer + pretraining, in one folder. Lesson 11.

`python -m minimac.learn` needs a base model that already knows its first domain before it can show continual
learning. `cached_base` returns the folder of one, building it on the first call:

    1. a byte-level BPE tokenizer trained on the base domain's training text plus an equal-sized slice of every
       later domain (the data README's advice: a base-only tokenizer fragments code, which muddles the comparison);
    2. pretraining on the base domain with minimac.train.Trainer (minimac.pretrain's batches): `base_steps` steps,
       or, when that is None, as many as fit in `base_seconds` once the step has compiled (timed on the first
       steps, like `python -m minimac.pretrain --minutes`), so a slow laptop gets a smaller base but no longer wait;
    3. everything written into a temp folder beside the cache entry, then renamed into place (os.replace), so an
       interrupted build never leaves a half-made base behind.

The folder is $MINIMAC_CACHE/base-<preset>-<hash> (default ~/.cache/minimac), where the hash covers every setting
and the text itself, and holds `tokenizer/`, `model.safetensors` + `config.json` (minimac.checkpoint) and
`timings.json` (the measured compile and step times, and the machine's pace then, used to estimate how long later
runs take at the machine's pace of that moment).
Leaves out: the learning that follows (minimac/learn.py), long pretraining runs (python -m minimac.pretrain).
"""
from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from tinygrad import Tensor

from minimac import checkpoint
from minimac.data import cache_dir, encode_documents
from minimac.files import replace_folder
from minimac.model import ModelConfig, Transformer
from minimac.pretrain import step_batches
from minimac.tokenizer import Tokenizer
from minimac.train import TrainConfig, Trainer

TIMINGS = "timings.json"
CALIBRATION, WARMUP = 4, 10  # steps timed before a time-boxed run fixes its length; linear warmup steps
REPLAN = 50                  # a time-boxed run plans its length again every REPLAN steps


@dataclass(frozen=True)
class BaseSpec:
    """What the cached base is made of; every field (and the text) goes into the cache key."""
    preset: str = "nano"
    vocab_size: int = 2048
    base_steps: int | None = None
    base_seconds: float = 60.0
    batch_size: int = 8
    seq_len: int = 64
    lr: float = 2e-3
    seed: int = 1337

    def key(self, texts: list[str]) -> str:
        h = hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode())
        for t in texts:
            h.update(hashlib.sha256(t.encode("utf-8")).digest())
        return f"base-{self.preset}-{h.hexdigest()[:12]}"


def tokenizer_text(base_docs: list[str], later_docs: list[list[str]]) -> list[str]:
    """The base documents plus, from each later domain, its first documents up to the base's size in characters."""
    out, budget = list(base_docs), sum(map(len, base_docs))
    for docs in later_docs:
        taken = 0
        for d in docs:
            if taken >= budget:
                break
            out.append(d)
            taken += len(d)
    return out


def machine_pace() -> float:
    """Seconds of a fixed piece of work (eight 512 x 512 float32 matmuls in numpy), the median of 7 tries (0.08 s in
    all on the project's 2-core CPU): how fast this machine runs right now. A cached base's timings were measured when
    it was built, maybe at another load (on a shared 2-core CPU the pace moved 4x within a minute); `at_current_pace`
    scales them by pace now / pace then."""
    a = np.full((512, 512), 0.5, np.float32)
    tries = []
    for _ in range(7):
        start = time.perf_counter()
        for _ in range(8):
            a @ a
        tries.append(time.perf_counter() - start)
    return float(np.median(tries))


def at_current_pace(timings: dict) -> dict:
    """A cached base's timings scaled to this machine's pace now (unchanged when the base did not record its pace)."""
    if not timings.get("pace_s"):
        return timings
    factor = machine_pace() / timings["pace_s"]
    return {**timings, **{k: timings[k] * factor for k in ("first_steps_s", "pretrain_step_s") if k in timings}}


def read_timings(folder: Path) -> dict:
    try:
        return json.loads((Path(folder) / TIMINGS).read_text())
    except (OSError, ValueError):
        return {}


def find_timings(model_config) -> dict:
    """The timings of a cached base with this model config (a resumed learner's base: its step time on this machine),
    or {} if the cache has none."""
    want = model_config.to_dict()
    for folder in sorted(cache_dir().glob("base-*")):
        try:
            if json.loads((folder / "config.json").read_text()).get("model") == want:
                return read_timings(folder)
        except (OSError, ValueError):
            continue
    return {}


def cached_base(spec: BaseSpec, base_docs: list[str], later_docs: list[list[str]],
                say: Callable[[str], None] = print, log: Callable[[dict], None] | None = None) -> tuple[Path, bool]:
    """(folder of the base, whether it was built now). Builds it if the cache has none for these settings."""
    if not base_docs or not any(d.strip() for d in base_docs):
        raise ValueError("the base domain has no text to pretrain on")
    folder = cache_dir() / spec.key(base_docs + [d for docs in later_docs for d in docs])
    if (folder / "model.safetensors").is_file() and (folder / "tokenizer").is_dir():
        return folder, False
    # written whole or not at all; if another process built the same entry meanwhile, theirs is kept
    replace_folder(lambda tmp: _build(spec, base_docs, later_docs, tmp, say, log), folder, keep_existing=True)
    return folder, True


def _build(spec: BaseSpec, base_docs: list[str], later_docs: list[list[str]], out: Path,
           say: Callable[[str], None], log: Callable[[dict], None] | None) -> None:
    t0 = time.perf_counter()
    tokenizer = Tokenizer().train(tokenizer_text(base_docs, later_docs), spec.vocab_size, verbose=False)
    tokenizer.save(out / "tokenizer")
    ids = encode_documents(base_docs, tokenizer)
    say(f"tokenizer: {tokenizer.vocab_size} ids in {time.perf_counter() - t0:.1f}s; base text: {len(ids):,} tokens")
    say(f"pretraining the base model ({spec.preset}) for " + (f"{spec.base_steps} steps" if spec.base_steps else
        f"about {spec.base_seconds:g}s") + "; its training step compiles first (the longest wait of a first run)")
    Tensor.manual_seed(spec.seed)
    preset = ModelConfig.from_preset(spec.preset)
    model = Transformer(ModelConfig.from_preset(spec.preset, vocab_size=tokenizer.vocab_size,
                                                max_seq_len=max(spec.seq_len, preset.max_seq_len)))
    timed = spec.base_steps is None
    max_steps = CALIBRATION if timed else spec.base_steps
    config = TrainConfig(batch_size=spec.batch_size, seq_len=spec.seq_len, lr=spec.lr, min_lr=spec.lr / 10,
                         warmup_steps=WARMUP if timed else min(WARMUP, max(1, max_steps // 5)), max_steps=max_steps,
                         eval_every=0, ckpt_every=0)
    trainer = Trainer(model, config, step_batches(ids, spec.batch_size, spec.seq_len, spec.seed))
    stamps: list[float] = []

    def on_step(rec: dict) -> None:
        stamps.append(time.perf_counter())
        if log is not None:
            log({**rec, "steps": config.max_steps, "stamps": stamps})

    start = time.perf_counter()
    status = trainer.fit(log=on_step)
    # The step has compiled and been timed: spend the rest of the budget, planning the step count again every
    # REPLAN steps from the pace of the last ones, so that a machine that gets busier (or quieter) still ends near
    # base_seconds (on a shared 2-core CPU the pace changed 4x within a minute). The schedule decays to max_steps.
    while timed and status == "done":
        recent = stamps[-REPLAN:] if len(stamps) > REPLAN else stamps[1:]
        step_s = (recent[-1] - recent[0]) / max(1, len(recent) - 1)
        left = spec.base_seconds - (stamps[-1] - stamps[1])
        config.max_steps = max(WARMUP, trainer.step + int(left / step_s), trainer.step)  # calibration: in warmup
        if trainer.step >= config.max_steps:
            break
        status = trainer.fit(until_step=min(config.max_steps, trainer.step + REPLAN), log=on_step)
    if status != "done":
        raise KeyboardInterrupt(f"base pretraining {status} after {trainer.step} steps; nothing was cached")
    checkpoint.save(model, out)
    steady = np.diff(stamps[2:]) if len(stamps) > 3 else np.diff([start, *stamps])
    timings = {"first_steps_s": stamps[1] - start if len(stamps) > 1 else stamps[-1] - start,
               "pretrain_step_s": float(np.median(steady)), "pretrain_s": time.perf_counter() - start,
               "build_s": time.perf_counter() - t0, "final_loss": trainer.history[-1]["loss"],
               "pace_s": machine_pace()}   # the machine's pace as the steps were timed: later runs scale by it
    (out / TIMINGS).write_text(json.dumps(timings, indent=2))
    say(f"base model: {trainer.step} steps, loss {timings['final_loss']:.3f}, {timings['build_s']:.0f}s")


def default_base(spec: BaseSpec | None = None, say: Callable[[str], None] = print) -> Path:
    """The folder of the demo's base: pretrained on the embedded default corpus's first domain ("docs"), with a
    tokenizer that has also seen some of "code". The same cache entry `python -m minimac.learn` uses.

        >>> folder = default_base()                                           # doctest: +SKIP
        >>> model, tok = checkpoint.load(folder), Tokenizer.load(folder / "tokenizer")   # doctest: +SKIP
    """
    from minimac.data import DEFAULT_DOMAINS, load_corpus
    first, *later = (load_corpus("default", "train", domain=d) for d in DEFAULT_DOMAINS)
    return cached_base(spec or BaseSpec(), first, later, say=say)[0]
