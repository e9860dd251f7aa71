"""Tokens per second: KV-cached generation (minimac.generate) vs recomputing the whole context for every token.

The seed's `generate()` ran a full forward pass over the (cropped) context for every new token. minimac prefills the
prompt once, then runs one token per step against the KV cache, with a TinyJit'd step. Both runs here are greedy
(temperature 0), start from the same random prompt, and must produce the same tokens (checked).

Each method runs once untimed first, so kernel compilation is excluded from the figures (it is reported apart as
"first run"). The recompute baseline pads its context to a multiple of 32 tokens so that it compiles a few shapes,
not one per length. generate() keeps its jitted decode step per model, so the timed cached run is a prefill plus
replays of a captured step; the JIT capture is part of the first run.
Random weights: the speed of a forward pass does not depend on what the weights say.

    python benchmarks/bench_generate.py --preset nano                      # CPU here
    DEV=CUDA python benchmarks/bench_generate.py --preset small --json out.json
    python benchmarks/bench_generate.py --preset medium --device CUDA --new-tokens 128
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout without installing


def recompute_generate(model, prompt: list[int], n: int, bucket: int = 32) -> list[int]:
    """The seed's way: a full forward over the last max_seq_len tokens for every new token (greedy).

    The context is right-padded to a multiple of `bucket`, so tinygrad compiles a few shapes instead of one per
    length; causal attention keeps the padding invisible to the last real position, whose logits we read.
    """
    import numpy as np

    ids, L = list(prompt), model.config.max_seq_len
    for _ in range(n):
        context = ids[-L:]
        width = min(L, -(-len(context) // bucket) * bucket)
        h = model.hidden_states([context + [0] * (width - len(context))])[:, len(context) - 1:len(context)]
        ids.append(int(np.argmax(model.lm_head(h).numpy().reshape(-1))))
    return ids[len(prompt):]


def timed(fn, *args):
    t0 = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - t0


def main(argv: list[str] | None = None) -> dict:
    import minimac.fast
    minimac.fast.install()  # the same numbers, faster; MINIMAC_FAST=0 keeps the plain path
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--preset", default="nano", choices=["nano", "tiny", "small", "medium", "large"])
    ap.add_argument("--device", default=None, help="tinygrad device (CPU, CUDA, METAL, ...); default: DEV or auto")
    ap.add_argument("--vocab-size", type=int, default=None, help="override the preset's vocab size")
    ap.add_argument("--prompt-len", type=int, default=32)
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--skip-recompute", action="store_true", help="only time the cached path")
    ap.add_argument("--json", default=None, metavar="PATH", help="also write the results as JSON")
    args = ap.parse_args(argv)
    if args.device:
        os.environ["DEV"] = args.device  # before tinygrad is imported

    import numpy as np
    from rich.console import Console
    from rich.table import Table
    from tinygrad import Device, Tensor

    from minimac.generate import generate
    from minimac.model import ModelConfig, Transformer

    overrides = {"vocab_size": args.vocab_size} if args.vocab_size else {}
    config = ModelConfig.from_preset(args.preset, **overrides)
    if args.prompt_len + args.new_tokens > config.max_seq_len:
        ap.error(f"prompt-len + new-tokens must fit max_seq_len {config.max_seq_len}")
    Tensor.manual_seed(0)
    model = Transformer(config)
    prompt = np.random.default_rng(0).integers(1, config.vocab_size, args.prompt_len).tolist()
    n = args.new_tokens

    rows, tokens = {}, {}
    methods = {"kv cache": lambda: generate(model, prompt, n, temperature=0)}
    if not args.skip_recompute:
        methods["recompute"] = lambda: recompute_generate(model, prompt, n)
    for name, fn in methods.items():
        _, first = timed(fn)
        tokens[name], seconds = timed(fn)
        rows[name] = {"seconds": seconds, "tokens_per_s": n / seconds, "ms_per_token": 1e3 * seconds / n,
                      "first_run_seconds": first}
    same = len(set(map(tuple, tokens.values()))) == 1
    result = {"preset": args.preset, "device": Device.DEFAULT, "params": model.param_count(),
              "config": config.to_dict(), "prompt_len": args.prompt_len, "new_tokens": n,
              "machine": f"{platform.machine()}, {os.cpu_count()} cpus", "same_tokens": same, "methods": rows}
    if "recompute" in rows:
        result["speedup"] = rows["recompute"]["seconds"] / rows["kv cache"]["seconds"]

    table = Table(title=f"greedy generation, {args.preset} ({model.param_count():,} params) on {Device.DEFAULT}: "
                        f"prompt {args.prompt_len}, {n} new tokens")
    for col in ("method", "tokens/s", "ms/token", "seconds", "first run (compiles), s"):
        table.add_column(col, justify="right" if col != "method" else "left")
    for name, r in rows.items():
        table.add_row(name, f"{r['tokens_per_s']:.1f}", f"{r['ms_per_token']:.1f}", f"{r['seconds']:.2f}",
                      f"{r['first_run_seconds']:.1f}")
    console = Console()
    console.print(table)
    if "speedup" in result:
        console.print(f"kv cache is {result['speedup']:.1f}x faster; same tokens: {same}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
