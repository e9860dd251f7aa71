"""Where a decoding step's time goes, kernel by kernel: the decode step (greedy, batch 1 or --batch) jitted without
graphs and timed one kernel at a time (tinygrad's DEBUG=2 timing), grouped by kernel name, slowest first; and
generate()'s tokens/s. `--prefill N` lists a prefill of N tokens the same way. `--set FIELD=0|1` overrides a field of
this device's row of minimac/fast/devices.py (an A/B of one decoding choice, in separate runs), `--plain NAMES` runs
those seams plain, and `--beam N` compiles the decoding kernels with tinygrad's BEAM search (tinygrad caches its
choices on disk, so a second run starts fast).

    python benchmarks/decode_kernels.py --preset nano --batch 8 --set decode_batch_transposed=0
    DEV=CUDA python benchmarks/decode_kernels.py --preset medium --prefill 512 [--beam 2]
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import re
import time
from collections import defaultdict


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--preset", default="nano")
    ap.add_argument("--new-tokens", type=int, default=128)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--beam", type=int, default=0)
    ap.add_argument("--top", type=int, default=20)
    ap.add_argument("--prefill", type=int, default=0, help="also time and list the prefill of a prompt this long")
    ap.add_argument("--set", action="append", default=[], metavar="FIELD=0|1",
                    help="override a field of this device's row of minimac/fast/devices.py, e.g. "
                    "decode_shared_inputs=1")
    ap.add_argument("--plain", default="", help="seams to run plain (minimac.ops.plain), comma-separated: "
                    "attention,swiglu_hidden")
    args = ap.parse_args(argv)
    from minimac.fast import devices
    fields = {f.name for f in dataclasses.fields(devices.Capabilities)}
    for item in args.set:
        if item.partition("=")[0] not in fields or not item.partition("=")[2].isdigit():
            ap.error(f"--set {item!r}: expected FIELD=N with FIELD one of {sorted(fields)}")
    import minimac.fast
    from minimac import ops
    minimac.fast.install()
    with ops.plain(*args.plain.split(",")) if args.plain else contextlib.nullcontext():
        run(args)


def run(args) -> None:
    import numpy as np
    from tinygrad import Context, Device, Tensor

    from minimac.fast import decode, devices
    from minimac.fast.sampling import Rules
    from minimac.generate import generate_batch
    from minimac.model import ModelConfig, Transformer
    for item in args.set:
        field, value = item.split("=")
        name = devices.backend(Device.DEFAULT)
        devices.DEVICES[name] = dataclasses.replace(devices.capabilities(name), **{field: int(value)})
    cfg = ModelConfig.from_preset(args.preset)
    Tensor.manual_seed(0)
    model = Transformer(cfg)
    rows = np.random.default_rng(0).integers(1, cfg.vocab_size, (args.batch, 32)).tolist()
    t = time.perf_counter()
    with Context(BEAM=args.beam):
        for _ in range(2):  # the jits capture on their second call
            generate_batch(model, rows, 40, temperature=0)
    print(f"{args.preset} on {Device.DEFAULT}, BEAM={args.beam} {' '.join(args.set)}"
          f"{', plain ' + args.plain if args.plain else ''}: first two calls {time.perf_counter() - t:.1f} s")
    best = min(_timed(lambda: generate_batch(model, rows, args.new_tokens, temperature=0)) for _ in range(3))
    print(f"generate, batch {args.batch}: {args.batch * args.new_tokens / best:.1f} tokens/s, "
          f"{1e3 * best / args.new_tokens:.3f} ms a step")
    s = decode.decoder(model).session(args.batch)
    steps = 16
    with Context(TRAINING=0, JIT=2, BEAM=args.beam):
        s.jits.pop(("step", Rules(), 1), None)
        for pos in range(1, 1 + steps):    # capture (the first two calls), then time
            s.step(pos, Rules())
        table(lambda: [s.step(pos, Rules()) for pos in range(1, 1 + steps)], steps, "a token", args.top)
    if args.prefill:
        long = np.random.default_rng(1).integers(1, cfg.vocab_size, (args.batch, args.prefill)).tolist()
        with Context(BEAM=args.beam):
            for _ in range(2):
                generate_batch(model, long, 1, temperature=0)
        best = min(_timed(lambda: generate_batch(model, long, 1, temperature=0)) for _ in range(3))
        print(f"prefill of {args.prefill} tokens (and the first id): {1e3 * best:.1f} ms")
        with Context(TRAINING=0, JIT=2, BEAM=args.beam):
            for key in [k for k in s.jits if k[0] == "prefill"]:
                s.jits.pop(key)
            for _ in range(2):
                generate_batch(model, long, 1, temperature=0)
            table(lambda: generate_batch(model, long, 1, temperature=0), 1, "prefill", args.top)


def table(fn, calls: int, per: str, top: int) -> None:
    """Run fn under DEBUG=2 and print its kernels grouped by name, slowest first, per call of `calls`."""
    from tinygrad import Context, GlobalCounters
    out = io.StringIO()
    GlobalCounters.reset()
    with Context(DEBUG=2), contextlib.redirect_stdout(out):
        fn()
    by_name: dict[str, list[float]] = defaultdict(list)
    for line in out.getvalue().splitlines():
        line = re.sub(r"\x1b\[[0-9;]*m", "", line)
        m = re.match(r"\*\*\* \S+\s+\d+\s+(\S+).*?tm\s+([\d.]+)us", line)
        if m:
            by_name[m[1]].append(float(m[2]))
    total = sum(sum(v) for v in by_name.values()) / calls
    count = sum(len(v) for v in by_name.values()) / calls
    print(f"{per}: {count:.0f} kernels, {total / 1e3:.3f} ms of kernels (each timed alone)")
    print(f"{'kernel':48s} {per:>8s} {'us each':>8s} {'us ' + per:>10s}")
    for name, v in sorted(by_name.items(), key=lambda kv: -sum(kv[1]))[:top]:
        print(f"{name:48s} {len(v) / calls:8.0f} {sum(v) / len(v):8.1f} {sum(v) / calls:10.1f}")


def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


if __name__ == "__main__":
    main()
