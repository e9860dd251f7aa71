"""`python -m minimac.pretrain`: tokenizer + pretraining + held-out bits per byte, in one command. Lesson 07.

    python -m minimac.pretrain --preset nano --corpus default --minutes 5 --out runs/nano
    python -m minimac.pretrain --resume runs/nano --steps 3000        # carry on (to 3000 steps in all)
    python -m minimac.generate runs/nano --prompt "def "               # try it
    python -m minimac.pretrain --preset small --devices 4 --batch-size 64   # each step's 64 rows split over 4 GPUs

It trains a byte-level BPE tokenizer on the corpus's training split (or reuses the one of --resume / --tokenizer),
packs the split into one token stream, pretrains with `minimac.train.Trainer`, then measures bits per byte on the
held-out (valid) split. The output directory holds `tokenizer/`, `model.safetensors` + `config.json` (for
`minimac.checkpoint.load` and `minimac.generate`), `checkpoint.safetensors` (resumable: weights + AdamW moments + step) and
`metrics.json` (tokens/s, wall time, held-out bits per byte, the command line and the machine).
`--corpus` is "default" (embedded: Python's own docs and stdlib source, no download), a registry name (see
`minimac.data.list_corpora()`; MINIMAC_DATA points at an offline mirror), or a path to a UTF-8 text file.
`--minutes` bounds the training loop, evaluations included; tokenizer training and the final evaluation come on top.
Not covered: several corpora at once (that is continual learning: `python -m minimac.learn`).
"""
from __future__ import annotations

import argparse
import importlib.metadata
import json
import math
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
from tinygrad import Device, Tensor

from minimac import checkpoint, fast, metrics, parallel
from minimac.corpora import read_text, split_documents
from minimac.data import DEFAULT_DOMAINS, Batcher, encode_documents, list_corpora, load_corpus
from minimac.fast.linear import MATMUL_DTYPES, set_matmul_dtype
from minimac.generate import generate
from minimac.model import ModelConfig, Transformer
from minimac.readout import Readout, fmt_seconds
from minimac.tokenizer import Tokenizer
from minimac.train import TrainConfig, Trainer, read_checkpoint_meta, train_config_from_dict

DEFAULTS = {"preset": "nano", "corpus": "default", "batch_size": 16, "seq_len": 128, "lr": 1e-3, "seed": 1337,
            "warmup_steps": 30}
UNSET = 10**9          # max_steps of a --minutes run before calibration
CALIBRATION_STEPS = 10   # with --minutes: time this many steps (all inside warmup), then fix max_steps
# flags whose value must match the checkpoint when resuming (the JIT shapes, the data, the model)
RESUME_FIXED = {"preset": "preset", "corpus": "corpus", "batch_size": "batch_size", "seq_len": "seq_len",
                "vocab_size": "vocab_size", "seed": "seed", "lr": "lr", "warmup_steps": "warmup_steps"}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m minimac.pretrain", description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", help=f"model size: nano, tiny, small, medium, large (default {DEFAULTS['preset']})")
    p.add_argument("--corpus", help="'default', a registry name, or a .txt file (default: default)")
    budget = p.add_argument_group("how long (default: --minutes 5)")
    budget.add_argument("--minutes", type=float, help="wall-clock budget of the training loop")
    budget.add_argument("--steps", type=int, help="optimizer steps in all (counting those of --resume)")
    budget.add_argument("--tokens", type=int, help="training tokens in all (steps = tokens / (batch * seq_len))")
    p.add_argument("--batch-size", type=int, help=f"sequences per step (default {DEFAULTS['batch_size']})")
    p.add_argument("--seq-len", type=int, help=f"tokens per sequence (default {DEFAULTS['seq_len']})")
    p.add_argument("--lr", type=float, help=f"peak learning rate (default {DEFAULTS['lr']})")
    p.add_argument("--warmup-steps", type=int, help=f"linear warmup (default {DEFAULTS['warmup_steps']})")
    p.add_argument("--vocab-size", type=int, help="tokenizer size (default: the preset's)")
    p.add_argument("--seed", type=int, help=f"model init and batch order (default {DEFAULTS['seed']})")
    p.add_argument("--eval-every", type=int, default=200, help="steps between held-out evaluations (0: end only)")
    p.add_argument("--out", help="output directory (default runs/<preset>-<corpus>, or the --resume directory)")
    p.add_argument("--resume", metavar="DIR", help="continue the run saved in DIR")
    p.add_argument("--tokenizer", metavar="DIR", help="use this trained tokenizer instead of training one")
    p.add_argument("--sample-tokens", type=int, default=60, help="tokens to generate at the end (0: none)")
    p.add_argument("--no-live", action="store_true", help="plain log lines instead of a live panel (logs, CI)")
    p.add_argument("--devices", type=int, help="split each batch across this many devices of the default backend "
                   "(GPUs, or CPU devices up to the core count): weights replicated, gradients summed by tinygrad "
                   "(default 1; on --resume, the checkpoint's, which may be changed)")
    p.add_argument("--matmul-dtype", choices=list(MATMUL_DTYPES), help="matmul operands in half "
                   "precision, float32 weights and sums: bfloat16 trains the small preset 2.6x faster on an H100 "
                   "(docs/performance.md; default float32)")
    args = p.parse_args(argv)
    if args.steps is not None and args.tokens is not None:
        p.error("--steps and --tokens both say how long to train: give one of them")
    for name in ("minutes", "steps", "tokens", "batch_size", "seq_len", "lr", "vocab_size", "devices"):
        value = getattr(args, name)
        if value is not None and not value > 0:
            p.error(f"--{name.replace('_', '-')} must be positive, got {value}")
    return args


def corpus_documents(name: str, split: str) -> list[str]:
    """The documents of one split: the embedded default (docs + code), a registry corpus, or a text file cut 90/5/5."""
    if name == "default":
        return [d for domain in DEFAULT_DOMAINS for d in load_corpus("default", split, domain=domain)]
    if name not in list_corpora() and (os.sep in name or name.endswith(".txt") or Path(name).is_file()):
        if not Path(name).is_file():
            raise FileNotFoundError(f"corpus file {name!r} does not exist")
        text = read_text(Path(name))
        if not text.strip():
            raise ValueError(f"corpus file {name!r} is empty")
        return split_documents([text])[split]
    return load_corpus(name, split)   # an unknown name raises ValueError listing the choices


def step_batches(tokens: np.ndarray, batch_size: int, seq_len: int, seed: int) -> Batcher:
    """batches(step) -> the (B, T+1) batch of that step, in data.Batcher's shuffled epochs (raises if too short)."""
    return Batcher(tokens, batch_size, seq_len, seed=seed)


def _resolve(args: argparse.Namespace) -> tuple[dict, dict | None]:
    """Fill unset flags from the checkpoint (on --resume) or the defaults; refuse flags that contradict a checkpoint."""
    meta = None
    if args.resume:
        meta = read_checkpoint_meta(args.resume)
        run = meta.get("run")
        if not isinstance(run, dict) or set(RESUME_FIXED) - set(run):
            raise ValueError(f"the checkpoint in {args.resume} was not written by `python -m minimac.pretrain` (it has "
                             "no run settings); resume it in Python with Trainer.load")
        for flag, key in RESUME_FIXED.items():
            given, saved = getattr(args, flag), run.get(key)
            if given is not None and given != saved:
                raise ValueError(f"--{flag.replace('_', '-')} {given} does not match the checkpoint in {args.resume} "
                                 f"({key} = {saved}); leave the flag out to resume, or start a new run with --out")
        settings = {k: run[k] for k in RESUME_FIXED}
    else:
        settings = {k: getattr(args, k) if getattr(args, k) is not None else DEFAULTS.get(k) for k in RESUME_FIXED}
        if settings["vocab_size"] is None:
            settings["vocab_size"] = ModelConfig.from_preset(settings["preset"]).vocab_size
    return settings, meta


def _machine() -> dict:
    return {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(), "device": Device.DEFAULT, "tinygrad": importlib.metadata.version("tinygrad"),
            "python": platform.python_version()}


def prepare_data(s: dict, args: argparse.Namespace,
                 say=print) -> tuple[Tokenizer, np.ndarray, np.ndarray, str, list[str]]:
    """(tokenizer, packed training ids, held-out ids with <|endoftext|> first, held-out text, held-out documents)."""
    train_docs, valid_docs = corpus_documents(s["corpus"], "train"), corpus_documents(s["corpus"], "valid")
    if not train_docs or not valid_docs:
        raise ValueError(f"corpus {s['corpus']!r} is too short: it needs text in both its train and valid splits")
    tok_dir = Path(args.resume) / "tokenizer" if args.resume else args.tokenizer
    if tok_dir:
        tokenizer = Tokenizer.load(tok_dir)
    else:
        say(f"training a {s['vocab_size']}-token BPE tokenizer on the train split of {s['corpus']}")
        tokenizer = Tokenizer().train(train_docs, s["vocab_size"], verbose=not args.no_live)
    valid_text = "\n\n".join(valid_docs)
    valid_ids = np.array([tokenizer.eot_id, *tokenizer.encode(valid_text)], dtype=np.int32)
    return tokenizer, encode_documents(train_docs, tokenizer), valid_ids, valid_text, valid_docs


def main(argv: list[str] | None = None) -> int:
    fast.install()  # the same numbers, faster (minimac/fast/); MINIMAC_PLAIN=1 keeps the plain path
    args = parse_args(argv)
    if args.matmul_dtype:
        set_matmul_dtype(args.matmul_dtype)
    wall_start = time.perf_counter()
    s, meta = _resolve(args)
    devices = args.devices or (meta["train_config"].get("devices", 1) if meta else 1)
    parallel.check_batch(s["batch_size"], parallel.resolve_devices(devices))   # refused before any work is done
    out = Path(args.out or args.resume or f"runs/{s['preset']}-{Path(s['corpus']).stem}")
    tokenizer, train_ids, valid_ids, valid_text, valid_docs = prepare_data(s, args)
    valid_bytes = len(valid_text.encode("utf-8"))
    with Readout(live=not args.no_live, every=50) as r:
        B, T = s["batch_size"], s["seq_len"]
        preset = ModelConfig.from_preset(s["preset"])
        Tensor.manual_seed(s["seed"])
        model = Transformer(ModelConfig.from_preset(s["preset"], vocab_size=tokenizer.vocab_size,
                                                    max_seq_len=max(T, preset.max_seq_len)))
        batches = step_batches(train_ids, B, T, s["seed"])
        if meta:   # a checkpoint holds one copy of each tensor: it resumes on any number of devices
            saved = meta["train_config"]
            config = train_config_from_dict({**saved, "devices": devices})
        else:
            config = TrainConfig(batch_size=B, seq_len=T, lr=s["lr"], min_lr=s["lr"] / 10, max_steps=UNSET,
                                 warmup_steps=s["warmup_steps"], eval_every=args.eval_every, ckpt_every=500,
                                 devices=devices)
        if args.steps or args.tokens:
            config.max_steps = args.steps or math.ceil(args.tokens / (B * T))
        unset = config.max_steps == UNSET   # a fresh time-boxed run (or one stopped before its calibration ended)
        minutes = args.minutes if args.minutes is not None else (5.0 if unset else None)

        n_quick = min(len(valid_ids), config.eval_batches * B * T + 1)   # periodic evals: a prefix of the valid set
        ratio = valid_bytes / (len(valid_ids) - 1)                         # bytes per predicted token, for the prefix

        def quick_eval(m) -> dict:
            e = metrics.evaluate(m, valid_ids[:n_quick], T, B, num_bytes=max(1, round((n_quick - 1) * ratio)))
            return {"loss": e["loss"], "bits_per_byte": e["bits_per_byte"]}

        run = {k: s[k] for k in RESUME_FIXED}
        trainer = Trainer(model, config, batches, evaluate=quick_eval, out_dir=out, meta={"run": run})
        if meta:
            trainer.load(args.resume)
        out.mkdir(parents=True, exist_ok=True)
        tokenizer.save(out / "tokenizer")
        where = f"devices {', '.join(trainer.devices)}" if len(trainer.devices) > 1 else f"device {Device.DEFAULT}"
        r.message(f"{s['preset']}: {model.param_count():,} parameters, {len(train_ids):,} training tokens, "
                  f"batch {B} x {T}, {where}, writing {out}")
        times: list[tuple[int, float]] = []

        def log(rec: dict) -> None:
            times.append((rec["step"], time.perf_counter()))
            r.step({**rec, "steps": rec["until"]})
            if "eval" in rec:
                r.message(f"  step {rec['step']}: held-out loss {rec['eval']['loss']:.3f}, "
                          f"~{rec['eval']['bits_per_byte']:.3f} bits/byte (first {n_quick - 1:,} tokens)")

        train_start = time.perf_counter()
        deadline = None if minutes is None else train_start + 60 * minutes
        status = "done"
        if unset:   # time a few steps (inside warmup, whose lr does not depend on max_steps), then fix max_steps
            status = trainer.fit(until_step=trainer.step + CALIBRATION_STEPS, log=log)
            per_step = (times[-1][1] - times[2][1]) / (times[-1][0] - times[2][0])   # after the JIT compiled
            config.max_steps = trainer.step + max(1, int((deadline - time.perf_counter()) / per_step))
        if status == "done":
            left = None if deadline is None else max(0.0, deadline - time.perf_counter())
            status = trainer.fit(max_seconds=left, log=log)
        train_seconds = time.perf_counter() - train_start

        r.message(f"training stopped ({status}) after {trainer.step} steps; evaluating on the held-out split")
        parallel.gather(model)   # the weights back on one device: evaluation, model.safetensors and the sample
        final = metrics.evaluate(model, valid_ids, T, B, num_bytes=valid_bytes)
        if not math.isfinite(final["loss"]):   # the last update is checked here: each step's loss came before it
            raise ValueError(f"the held-out loss after the last step is {final['loss']}: the weights are not finite, "
                             f"so model.safetensors was not written to {out}; try a lower --lr")
        checkpoint.save(model, out)
        steady = [t for t in times if t[0] > times[0][0] + 1] if len(times) > 3 else times
        tokens_per_s = ((steady[-1][0] - steady[0][0]) * B * T / (steady[-1][1] - steady[0][1])
                        if len(steady) > 1 else math.nan)
        result = {"status": status, "corpus": s["corpus"], "preset": s["preset"], "params": model.param_count(),
                  "vocab_size": tokenizer.vocab_size, "batch_size": B, "seq_len": T, "steps": trainer.step,
                  "tokens_seen": trainer.step * B * T, "tokens_per_s": tokens_per_s,
                  "train_seconds": train_seconds, "wall_seconds": time.perf_counter() - wall_start,
                  "final_train_loss": trainer.history[-1]["loss"] if trainer.history else math.nan,
                  "heldout_loss": final["loss"], "heldout_bits_per_byte": final["bits_per_byte"],
                  "heldout_tokens": final["num_tokens"], "heldout_bytes": valid_bytes,
                  "devices": list(trainer.devices),
                  "command": " ".join([Path(sys.executable).name, "-m", "minimac.pretrain", *(argv or sys.argv[1:])]),
                  "machine": _machine()}
        (out / "metrics.json").write_text(json.dumps(result, indent=2))
        r.message(f"held-out: {final['bits_per_byte']:.3f} bits/byte (loss {final['loss']:.3f}); "
                  f"{tokens_per_s:,.0f} tokens/s; {fmt_seconds(result['wall_seconds'])} in all; saved to {out}")
        if args.sample_tokens > 0:
            prompt = tokenizer.encode(valid_docs[0][:40])
            sample = generate(model, prompt, args.sample_tokens, temperature=0.8, top_k=40, seed=s["seed"],
                                    eos_id=tokenizer.eot_id)
            r.message(f"sample: {tokenizer.decode(prompt + sample)!r}")
    return 0 if status != "interrupted" else 130


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (ValueError, FileNotFoundError, TypeError) as e:
        sys.exit(f"error: {e}")
