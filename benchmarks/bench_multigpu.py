"""Data-parallel training speed on 1, 2, 4, 8 devices: minimac's Trainer (TrainConfig(devices=N), tinygrad's own
sharding) against PyTorch DistributedDataParallel on the same shapes, as the reference.

Weak scaling: every device gets the same rows (`--batch-per-device`), so N devices train on N times the global batch
in (ideally) the time one device takes for its share. Reported per preset and N: the median step time, tokens/s of the
whole step, and the scaling efficiency tokens/s(N) / (N x tokens/s(1)). Both frameworks: the same preset, float32
weights and AdamW (same groups, betas, eps, weight decay), global-norm clipping at 1.0, matmuls in `--matmul-dtype`
(bfloat16 by default: minimac.fast.linear.set_matmul_dtype and torch.autocast), the loss read back every step.

Each (framework, preset, N) runs in a child process of its own, so that neither memory nor compiled state carries over;
a device count that the machine does not have is reported as skipped, with the reason. The first `--warmup` steps
(compilation, JIT capture, DDP's bucket set-up) are not timed.

    python benchmarks/bench_multigpu.py                                   # small and medium on 1, 2, 4, 8 GPUs
    python benchmarks/bench_multigpu.py --presets nano --devices 1 2 --batch-per-device 4 --seq-len 64 \\
        --matmul-dtype float32 --steps 3      # a dry run on two CPU devices (numbers say nothing about GPUs)

PyTorch is a benchmark-only dependency (`pip install torch`); DDP uses NCCL on CUDA and gloo on the CPU.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))                  # run from a checkout without installing
sys.path.insert(0, str(ROOT / "benchmarks"))   # bench_train's PyTorch twin of the model


def batch_for(vocab: int, rows: int, seq_len: int, step: int, rank: int = 0):
    """The (rows, seq_len+1) ids of device `rank` at `step`: the same numbers in both frameworks."""
    import numpy as np
    return np.random.default_rng([0, step, rank]).integers(0, vocab, (rows, seq_len + 1)).astype(np.int32)


def preset_config(args):
    from minimac.model import ModelConfig
    preset = ModelConfig.from_preset(args.preset)
    return ModelConfig.from_preset(args.preset, max_seq_len=max(args.seq_len, preset.max_seq_len))


def timed(step_fn, warmup: int, steps: int) -> dict:
    for i in range(warmup):
        step_fn(i)
    times = []
    for i in range(warmup, warmup + steps):
        t0 = time.perf_counter()
        loss = step_fn(i)
        times.append(time.perf_counter() - t0)
    return {"step_ms": 1000 * statistics.median(times), "step_ms_min": 1000 * min(times), "last_loss": loss,
            "n": len(times)}


# ---- minimac (tinygrad) -------------------------------------------------------------------------------------------
def run_tinygrad(args) -> dict:
    import numpy as np
    from tinygrad import Tensor

    import minimac.fast
    minimac.fast.install()
    from minimac.fast.linear import set_matmul_dtype
    from minimac.model import Transformer
    from minimac.parallel import resolve_devices
    from minimac.train import TrainConfig, Trainer

    set_matmul_dtype(args.matmul_dtype)
    cfg = preset_config(args)
    devices = resolve_devices(args.n)            # raises (reported as skipped) where the machine has fewer
    rows, T = args.batch_per_device * args.n, args.seq_len
    Tensor.manual_seed(0)
    trainer = Trainer(Transformer(cfg), TrainConfig(batch_size=rows, seq_len=T, max_steps=10**6, warmup_steps=10,
                                                    eval_every=0, ckpt_every=0, devices=devices), lambda s: None)

    def step(i):
        batch = np.concatenate([batch_for(cfg.vocab_size, args.batch_per_device, T, i, r) for r in range(args.n)])
        return trainer.train_step(batch)[0]
    return {"devices": list(devices), **timed(step, args.warmup, args.steps)}


# ---- PyTorch DDP ---------------------------------------------------------------------------------------------------
def _ddp_worker(rank: int, args, port: int, out) -> None:
    import torch
    import torch.distributed as dist
    import torch.nn.functional as F
    from bench_train import torch_modules

    cuda = args.torch_device == "cuda"
    dist.init_process_group("nccl" if cuda else "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                            world_size=args.n)
    dev = torch.device(f"cuda:{rank}") if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(dev)
    else:
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // args.n))
    _, _, TorchTransformer, _ = torch_modules()
    cfg = preset_config(args)
    torch.manual_seed(0)
    model = TorchTransformer(cfg)
    for name, p in model.named_parameters():   # minimac's init, N(0, 0.02) but for the norms' gains: a sane first loss
        if not name.endswith("norm.weight"):
            torch.nn.init.normal_(p, 0.0, 0.02)
    model = model.to(dev)
    ddp = torch.nn.parallel.DistributedDataParallel(model, device_ids=[rank] if cuda else None)  # rank 0's weights
    params = list(dict.fromkeys(model.parameters()))
    decay, no_decay = [p for p in params if p.ndim >= 2], [p for p in params if p.ndim < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=3e-4, betas=(0.9, 0.95), eps=1e-8)
    dtype = getattr(torch, args.matmul_dtype)

    def step(i):
        b = torch.from_numpy(batch_for(cfg.vocab_size, args.batch_per_device, args.seq_len, i, rank)).long().to(dev)
        with torch.autocast(device_type=dev.type, dtype=dtype, enabled=args.matmul_dtype != "float32"):
            logits = ddp(b[:, :-1])
            loss = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), b[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()                                       # DDP all-reduces the gradients in buckets
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        return loss.item()                                    # the host sync, as minimac's step reads its loss
    result = timed(step, args.warmup, args.steps)
    if rank == 0:
        out.put(result)
    dist.destroy_process_group()


def run_torch(args) -> dict:
    import socket

    import torch
    import torch.multiprocessing as mp
    if args.torch_device == "cuda" and torch.cuda.device_count() < args.n:
        raise ValueError(f"{args.n} GPUs asked for, torch sees {torch.cuda.device_count()}")
    if args.torch_device == "cpu" and (os.cpu_count() or 1) < args.n:
        raise ValueError(f"{args.n} CPU processes asked for, this machine has {os.cpu_count()} cores")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ctx = mp.get_context("spawn")
    out = ctx.SimpleQueue()
    mp.start_processes(_ddp_worker, args=(args, port, out), nprocs=args.n, join=True, start_method="spawn")
    return {"devices": args.n, **out.get()}


# ---- the driver ----------------------------------------------------------------------------------------------------
def child(args) -> None:
    try:
        result = run_tinygrad(args) if args.child == "tinygrad" else run_torch(args)
    except (ValueError, RuntimeError) as e:     # not enough devices, out of memory: reported, not fatal
        result = {"skipped": f"{type(e).__name__}: {e}"}
    print("RESULT " + json.dumps(result))


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--presets", nargs="+", default=["small", "medium"])
    ap.add_argument("--devices", nargs="+", type=int, default=[1, 2, 4, 8])
    ap.add_argument("--batch-per-device", type=int, default=16, help="rows per device per step (weak scaling)")
    ap.add_argument("--seq-len", type=int, default=512)
    ap.add_argument("--matmul-dtype", default="bfloat16", choices=["float32", "bfloat16", "float16"])
    ap.add_argument("--frameworks", nargs="+", default=["tinygrad", "torch"], choices=["tinygrad", "torch"])
    ap.add_argument("--torch-device", default=None, help="cuda or cpu (default: cuda if DEV is CUDA/NV)")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--timeout", type=float, default=1800, help="seconds per child run")
    ap.add_argument("--json", metavar="PATH")
    ap.add_argument("--child", choices=["tinygrad", "torch"], help=argparse.SUPPRESS)
    ap.add_argument("--preset", help=argparse.SUPPRESS)
    ap.add_argument("--n", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.torch_device is None:
        args.torch_device = "cuda" if os.environ.get("DEV", "").split(":")[0] in ("CUDA", "NV") else "cpu"
    if args.child:
        return child(args)

    from tinygrad import Device
    info = {"machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
            "tinygrad_device": Device.DEFAULT, "torch_device": args.torch_device, "load_start": os.getloadavg(),
            **{k: getattr(args, k) for k in ("batch_per_device", "seq_len", "matmul_dtype", "warmup", "steps")}}
    print(f"weak scaling: {args.batch_per_device} x {args.seq_len} tokens per device, matmuls in {args.matmul_dtype}; "
          f"tinygrad on {Device.DEFAULT}, torch on {args.torch_device}; load {info['load_start'][0]:.2f}")
    results: dict = {"info": info, "runs": []}
    for preset in args.presets:
        for framework in args.frameworks:
            base = None
            for n in args.devices:
                cmd = [sys.executable, __file__, "--child", framework, "--preset", preset, "--n", str(n),
                       *[a for k in ("batch_per_device", "seq_len", "matmul_dtype", "torch_device", "warmup", "steps")
                         for a in (f"--{k.replace('_', '-')}", str(getattr(args, k)))]]
                try:
                    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout, check=False)
                    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
                    r = json.loads(lines[-1][7:]) if lines else {"skipped": proc.stderr.strip()[-400:]}
                except subprocess.TimeoutExpired:
                    r = {"skipped": f"no result within {args.timeout:.0f} s"}
                r.update(framework=framework, preset=preset, n=n)
                if "step_ms" in r:
                    r["tokens_per_s"] = n * args.batch_per_device * args.seq_len / (r["step_ms"] / 1000)
                    base = base or (r["tokens_per_s"] if n == 1 else None)
                    r["efficiency"] = r["tokens_per_s"] / (n * base) if base else None
                    eff = f", efficiency {r['efficiency']:.0%}" if r["efficiency"] is not None else ""
                    print(f"  {preset:7s} {framework:8s} N={n}: {r['step_ms']:8.1f} ms/step, "
                          f"{r['tokens_per_s']:12,.0f} tok/s{eff} (loss {r['last_loss']:.3f})")
                else:
                    print(f"  {preset:7s} {framework:8s} N={n}: skipped ({r['skipped'].splitlines()[-1][:200]})")
                results["runs"].append(r)
    info["load_end"] = os.getloadavg()
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return results


if __name__ == "__main__":
    main()
