"""Where a decoding step's time goes, kernel by kernel: the decode step (greedy, batch 1 or --batch) jitted without
graphs and timed one kernel at a time (tinygrad's DEBUG=2 timing), grouped by kernel name, slowest first; and
generate()'s tokens/s. `--prefill N` lists a prefill of N tokens the same way. `--set FIELD=N` overrides a field of
this device's row of minimac/fast/devices.py (an A/B of one decoding choice, in separate runs), `--plain NAMES` runs
those seams plain, and `--beam N` compiles the decoding kernels with tinygrad's BEAM search (tinygrad caches its
choices on disk, so a second run starts fast).

`--target sm_90` needs no GPU: it lists the kernels of one decode step as tinygrad would compile them for an NVIDIA GPU
of that architecture (the step built on the CPU with the CUDA row of the device table, --set applied to it; each
kernel's opts chosen and its code rendered for that target, nothing run): launch grid and block, threads, the work and
float4 loads each thread does in a row, and the megabytes it reads. A kernel with few threads and long loops is one
that a GPU runs far below its memory bandwidth.

    python benchmarks/decode_kernels.py --preset nano --batch 8 --set decode_batch_transposed=0
    DEV=CUDA python benchmarks/decode_kernels.py --preset medium --prefill 512 [--beam 2]
    python benchmarks/decode_kernels.py --preset medium --target sm_90 [--set matvec_threads=32]
"""
from __future__ import annotations

import argparse
import contextlib
import io
import os
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
    ap.add_argument("--target", default="", help="an NVIDIA architecture (sm_80, sm_90): list the decode step's kernels "
                    "as compiled for it, without a GPU")
    ap.add_argument("--position", type=int, default=160, help="--target: the position whose step is listed")
    ap.add_argument("--plain", default="", help="seams to run plain (minimac.ops.plain), comma-separated: "
                    "attention,swiglu_hidden")
    args = ap.parse_args(argv)
    from minimac.fast import devices
    try:   # the table's own reading of MINIMAC_CAPABILITIES, which refuses a field it does not know
        devices.overridden(devices.OTHER, ",".join(args.set))
    except ValueError as e:
        ap.error(f"--set: {e}")
    if args.set:   # an environment variable, read by tinygrad's compile workers too (minimac/fast/devices.py)
        os.environ["MINIMAC_CAPABILITIES"] = ",".join(filter(None, [os.environ.get("MINIMAC_CAPABILITIES"), *args.set]))
    import minimac.fast
    from minimac import ops
    minimac.fast.install()
    if args.target:
        if not re.fullmatch(r"sm_\d+", args.target):
            ap.error(f"--target {args.target!r}: expected an NVIDIA architecture such as sm_90")
        devices.DEVICES["CPU"] = devices.DEVICES["CUDA"]   # the graph the GPU would run, built on the CPU
    with ops.plain(*args.plain.split(",")) if args.plain else contextlib.nullcontext():
        (offline if args.target else run)(args)


def run(args) -> None:
    import numpy as np
    from tinygrad import Context, Device, Tensor

    from minimac.fast import decode
    from minimac.fast.sampling import Rules
    from minimac.generate import generate_batch
    from minimac.model import ModelConfig, Transformer
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


def offline(args) -> None:
    """--target: one decode step at --position, scheduled and rendered for an NVIDIA GPU of that architecture."""
    import numpy as np
    from tinygrad import Tensor, UOp
    from tinygrad.codegen.opt import tc
    from tinygrad.helpers import Target
    from tinygrad.renderer.cstyle import CStyleLanguage, CUDARenderer

    from minimac.fast import decode
    from minimac.fast.sampling import Rules, pick
    from minimac.generate import generate_batch
    from minimac.model import ModelConfig, Transformer

    class NotCompiled:   # the listing needs the schedule and the source, not a binary (nor NVRTC)
        def compile_cached(self, src: str) -> bytes:
            return b""

    gpu = CUDARenderer.__new__(CUDARenderer)
    CStyleLanguage.__init__(gpu, Target("CUDA", "", args.target))
    gpu.compiler, gpu.tensor_cores = NotCompiled(), tc.get_cuda(args.target)
    cfg = ModelConfig.from_preset(args.preset)
    Tensor.manual_seed(0)
    model = Transformer(cfg)
    rows = np.random.default_rng(0).integers(1, cfg.vocab_size, (args.batch, 32)).tolist()
    generate_batch(model, rows, 2, temperature=0)         # the decoding copy, its caches and buffers, on the CPU
    s = decode.decoder(model).session(args.batch)
    p = UOp.variable("start_pos", 1, s.L - 1).bind(args.position)
    mask = s.mask[:, :p + 1] if s.B > 1 else None
    logits = s.twin(s.ids[:, p:p + 1], p, mask, use_cache=True, last_only=True)
    _listing(gpu, pick(logits[:, 0], s.state, Rules()), f"{args.preset}, batch {args.batch}, a token at position "
             f"{args.position}, for {args.target} {' '.join(args.set)}")
    if args.prefill:
        bucket = next(b for b in decode.buckets(s.L) if b >= args.prefill)
        at = UOp.variable("last", 0, bucket - 1).bind(args.prefill - 1)
        h = s.twin.hidden_states(s.ids[:, :bucket], 0, s.mask[:, :bucket] if s.B > 1 else None, use_cache=True)
        _listing(gpu, pick(s.twin.lm_head(h[:, at:at + 1]).float()[:, 0], s.state, Rules()),
                 f"\n{args.preset}, batch {args.batch}, a prefill of {args.prefill} tokens (bucket {bucket}), "
                 f"for {args.target} {' '.join(args.set)}")


def _listing(gpu, out, title: str) -> None:
    """The kernels that realize `out`, compiled for the renderer `gpu` (nothing run), grouped by name."""
    from tinygrad.codegen import do_to_program
    from tinygrad.helpers import ansistrip, prod
    from tinygrad.uop.ops import Ops, sym_infer
    linear, var_vals = out.linear_with_vars()
    calls = [c.src[0] for c in linear.toposort() if c.op is Ops.CALL and c.src[0].op is Ops.SINK]
    by_name: dict[str, list] = defaultdict(list)
    with_vars = 0   # kernels whose arguments or launch grid hold a variable: a GPU graph updates each on every call
    for ast in calls:
        prg = do_to_program(ast, gpu)
        info, est = prg.arg, prg.src[0].arg.estimates
        with_vars += bool(info.vars)
        grid, block = info.launch_dims(var_vals)
        threads = prod(grid) * prod(block or (1,))
        opts = " ".join(f"{o.op.name}{o.arg}" for o in prg.src[0].arg.applied_opts)
        by_name[ansistrip(info.name)].append((grid, block, threads, sym_infer(est.ops, var_vals),
                                              sym_infer(est.mem, var_vals), prg.src[2].arg.count("float4"), opts))
    mb = sum(r[4] for v in by_name.values() for r in v) / 1e6
    gflop = sum(r[3] for v in by_name.values() for r in v) / 1e9
    print(f"{title}: {len(calls)} kernels, {mb:.1f} MB read, {gflop:.2f} GFLOP; {with_vars} kernels take a variable")
    print(f"{'kernel':34s} {'count':>5s} {'grid':>16s} {'block':>12s} {'threads':>8s} {'ops/thread':>10s} "
          f"{'float4':>6s} {'MB each':>8s} {'MFLOP':>8s}  opts")
    for name, v in sorted(by_name.items(), key=lambda kv: -sum(r[4] + r[3] / 100 for r in kv[1])):
        grid, block, threads, ops, mem, vec, opts = v[0]
        print(f"{name:34s} {len(v):5d} {grid!s:>16s} {block!s:>12s} {threads:8d} {ops / threads:10.0f} "
              f"{'yes' if vec else '':>6s} {mem / 1e6:8.3f} {ops / 1e6:8.1f}  {opts}")


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
