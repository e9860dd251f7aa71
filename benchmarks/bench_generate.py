"""Decoding speed: minimac.generate (the fast path of minimac/fast/decode.py) against a PyTorch KV-cache loop, in one
run on one machine, with the same weights; greedy, from the same prompt, the ids compared.

Rows (each timed after an untimed run that compiles; the best of `--repeats` runs; each PyTorch row right after its
tinygrad row):

    tinygrad            generate(model, prompt, n, temperature=0): prefill + n tokens, batch 1
    tinygrad again      the first row once more, just before the next one (the adapter's cost is against it)
    tinygrad + LoRA     the same with an active, unmerged adapter (r=8 on q/k/v/o/w1/w2/w3, B != 0)
    tinygrad sampling   temperature 0.8, top-k 40, top-p 0.9, repetition penalty 1.1, all on the device
    tinygrad batch B    generate_batch of B prompts of different lengths (left-padded): B * n tokens
    torch (batch B)     a plain PyTorch loop: prefill, then one token a step against a growing KV cache

Also: the prefill of a `--prefill`-token prompt (ms), and a profile of the decode step alone: its wall time a token,
kernels a token, kernel time a token (each kernel timed alone: tinygrad's DEBUG=2 timing on a copy of the step
jitted without graphs; on the CPU this timing adds its own cost to every kernel), and the host's time a token: Python
until the steps are issued, less (on the CPU, where the kernels run inside the C graph's call) the time in that call. The load average is printed at start and end: on a shared
machine compare only figures from one run. Random weights: the speed does not depend on what they say.

    python benchmarks/bench_generate.py --preset nano                      # CPU here
    DEV=CUDA python benchmarks/bench_generate.py --preset medium --new-tokens 128 --json out.json
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import json
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout without installing
sys.path.insert(0, str(Path(__file__).resolve().parent))


def best_of(repeats: int, fn):
    fn()  # compiles and captures
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return out, min(times)


def step_profile(model, steps: int = 32, rounds: int = 3) -> dict:
    """The decode step alone (greedy, batch 1, after a prefill): its wall time a token as generate() runs it, and
    its kernels and kernel time a token, from a copy of the step jitted without graphs and timed kernel by kernel.
    Interleaved rounds, the best of each, so that both see the same machine load."""
    from tinygrad import Context, GlobalCounters

    from minimac.fast import decode
    from minimac.fast.sampling import Rules
    s, rules = decode.decoder(model).session(1), Rules()
    K, key = decode.steps_per_call(s.ids), ("step", rules, 1)
    graphed, profiled, wall, kernel, host = s.jits.get(key), None, [], [], []
    from minimac.fast import cpu_graph
    inside, run_graph = [0.0], cpu_graph.CPUGraph.__call__

    def timed_graph(self, *a, **kw):  # on the CPU the kernels run inside the graph's one C call, synchronously
        t = time.perf_counter()
        try:
            return run_graph(self, *a, **kw)
        finally:
            inside[0] += time.perf_counter() - t
    cpu_graph.CPUGraph.__call__ = timed_graph
    with Context(TRAINING=0):
        for r in range(rounds + 1):
            inside[0], t0 = 0.0, time.perf_counter()
            for pos in range(1, 1 + steps, K):
                s.step(pos, rules, K)
            issued = time.perf_counter()  # a GPU runs the steps after they are issued; a CPU while they are
            s.ids.numpy()
            wall.append((time.perf_counter() - t0) / steps)
            host.append((issued - t0 - inside[0]) / steps)
            s.jits.pop(key, None)
            if profiled is not None:
                s.jits[key] = profiled
            with Context(JIT=2):  # captured without graphs: every kernel dispatched, timed and counted alone
                GlobalCounters.reset()
                with Context(DEBUG=2 if r else 0), contextlib.redirect_stdout(io.StringIO()):
                    for pos in range(1, 1 + steps):
                        s.step(pos, rules)
                kernel.append((GlobalCounters.time_sum_s / steps, GlobalCounters.kernel_count / steps))
            profiled = s.jits.pop(key)
            if graphed is not None:
                s.jits[key] = graphed
    cpu_graph.CPUGraph.__call__ = run_graph
    best = min(range(1, rounds + 1), key=lambda i: wall[i])
    w, h, (k, n) = wall[best], host[best], min(kernel[1:])
    return {"steps_per_call": K, "step_ms": 1e3 * w, "step_tokens_per_s": 1 / w, "kernels_per_token": n,
            "kernel_ms_per_token": 1e3 * k, "host_ms_per_token": 1e3 * h, "host_share": min(1.0, h / w)}


def torch_loop(cfg, weights, device: str):
    from bench_train import copy_weights, torch_modules, torch_sync
    torch, _, TorchTransformer, _ = torch_modules()
    tmodel = TorchTransformer(cfg)
    copy_weights(weights, tmodel, torch)
    tmodel.to(device).eval()

    @torch.no_grad()
    def run(prompts: list[list[int]], n: int) -> list[list[int]]:
        caches = [[None, None] for _ in range(cfg.num_layers)]
        logits = tmodel(torch.tensor(prompts, device=device), caches, 0, last_only=True)
        out, pos = [], len(prompts[0])
        for k in range(n):
            nxt = logits[:, -1].argmax(-1)
            out.append(nxt)
            if k < n - 1:
                logits = tmodel(nxt.reshape(-1, 1), caches, pos, last_only=True)
                pos += 1
        ids = torch.stack(out, 1).tolist()
        torch_sync(torch, device)
        return ids
    return run, torch.__version__


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--preset", default="nano", choices=["nano", "tiny", "small", "medium", "large"])
    ap.add_argument("--device", default=None, help="tinygrad device (CPU, CUDA, METAL, ...); default: DEV or auto")
    ap.add_argument("--prompt-len", type=int, default=32)
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--prefill", type=int, default=512, help="time the prefill of a prompt this long (if it fits)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--skip-torch", action="store_true")
    ap.add_argument("--json", default=None, metavar="PATH", help="also write the results as JSON")
    args = ap.parse_args(argv)
    if args.device:
        os.environ["DEV"] = args.device  # before tinygrad is imported
    result = run(args)
    print_result(result)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2, default=str) + "\n")
    return result


def run(args) -> dict:
    import numpy as np
    from tinygrad import Device, Tensor

    import minimac.fast
    from minimac import lora
    from minimac.generate import generate, generate_batch
    from minimac.model import ModelConfig, Transformer

    minimac.fast.install()  # the same numbers, faster; MINIMAC_PLAIN=1 keeps the plain path
    cfg = ModelConfig.from_preset(args.preset)
    n, B, load_start = args.new_tokens, args.batch, os.getloadavg()
    Tensor.manual_seed(0)
    model = Transformer(cfg)
    rng = np.random.default_rng(0)
    prompt = rng.integers(1, cfg.vocab_size, args.prompt_len).tolist()
    prompts = [rng.integers(1, cfg.vocab_size, args.prompt_len - i).tolist() for i in range(B)]
    rows, ids = {}, {}

    def record(name, fn, tokens):
        ids[name], s = best_of(args.repeats, fn)
        rows[name] = {"tokens_per_s": tokens / s, "ms_per_token": 1e3 * s / tokens, "seconds": s}

    loop = version = None
    if not args.skip_torch:  # before the adapter below: the same base weights
        weights = {k: v.numpy().copy() for k, v in model.state_dict().items()}
        loop, version = torch_loop(cfg, weights, "cuda" if Device.DEFAULT in ("CUDA", "NV") else "cpu")
    # each tinygrad row next to its PyTorch row, so that both meet about the same load
    record("tinygrad", lambda: generate(model, prompt, n, temperature=0), n)
    if loop is not None:
        record("torch", lambda: loop([prompt], n)[0], n)
    record(f"tinygrad batch {B}", lambda: generate_batch(model, prompts, n, temperature=0), B * n)
    if loop is not None:
        record(f"torch batch {B}", lambda: loop([prompts[0][:len(prompts[-1])]] * B, n), B * n)
    same_batch = ids[f"tinygrad batch {B}"][0] == generate(model, prompts[0], n, temperature=0)
    profile = step_profile(model)
    sampling = {"temperature": 0.8, "top_k": 40, "top_p": 0.9, "repetition_penalty": 1.1}
    record("tinygrad sampling", lambda: generate(model, prompt, n, seed=0, **sampling), n)
    args.prefill = min(args.prefill, cfg.max_seq_len)
    long = rng.integers(1, cfg.vocab_size, args.prefill).tolist()
    prefill_ms = 1e3 * best_of(args.repeats, lambda: generate(model, long, 1, temperature=0))[1]
    record("tinygrad again", lambda: generate(model, prompt, n, temperature=0), n)  # next to the adapter's row
    lora.inject_lora(model, lora.LoRAConfig(r=8))
    for layer in lora.lora_layers(model).values():
        layer.lora_B["default"].assign(Tensor.full(layer.lora_B["default"].shape, 0.01)).realize()
    record("tinygrad + LoRA", lambda: generate(model, prompt, n, temperature=0), n)
    from minimac.fast import decode, devices
    merge_ms = 1e3 * best_of(args.repeats, decode.decoder(model).refresh)[1]  # once a generate() call, not a token
    return {"preset": args.preset, "device": Device.DEFAULT, "params": model.param_count(),
            "overrides": os.environ.get("MINIMAC_CAPABILITIES", ""),
            "capabilities": dataclasses.asdict(devices.capabilities(Device.DEFAULT)),
            "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cpus",
            "torch": version, "prompt_len": args.prompt_len, "new_tokens": n,
            "batch": B, "rows": rows, "profile": profile, "prefill_tokens": args.prefill, "prefill_ms": prefill_ms,
            "same_tokens_as_torch": ids.get("torch") == ids["tinygrad"] if "torch" in ids else None,
            "batch_row_equals_one_by_one": same_batch, "lora_merge_ms": merge_ms, "load": [load_start, os.getloadavg()]}


def print_result(r: dict) -> None:
    print(f"greedy decoding, {r['preset']} ({r['params']:,} params) on {r['device']} ({r['machine']}), prompt "
          f"{r['prompt_len']}, {r['new_tokens']} new tokens; load {r['load'][0][0]:.2f} -> {r['load'][1][0]:.2f}"
          f"{'; MINIMAC_CAPABILITIES=' + r['overrides'] if r.get('overrides') else ''}")
    print(f"  {'':<22}{'tokens/s':>10}{'ms/token':>10}")
    for name, row in r["rows"].items():
        print(f"  {name:<22}{row['tokens_per_s']:>10.1f}{row['ms_per_token']:>10.3f}")
    p, rows, B = r["profile"], r["rows"], r["batch"]
    print(f"  decode step alone ({p['steps_per_call']} a jit call): {p['step_tokens_per_s']:.1f} tokens/s, "
          f"{p['step_ms']:.3f} ms a token, {p['kernels_per_token']:.0f} kernels a token, {p['kernel_ms_per_token']:.3f} "
          f"ms of kernels a token (timed one by one), host {p['host_ms_per_token']:.3f} ms a token "
          f"({100 * p['host_share']:.0f}%)")
    print(f"  batch {B} / batch 1: {rows[f'tinygrad batch {B}']['tokens_per_s'] / rows['tinygrad']['tokens_per_s']:.2f}x;"
          f" LoRA costs {100 * (rows['tinygrad + LoRA']['ms_per_token'] / rows['tinygrad again']['ms_per_token'] - 1):+.0f}%"
          f" (of which merging the adapter, once a call: {r['lora_merge_ms']:.1f} ms)")
    if "torch" in rows:
        print(f"  tinygrad / torch: {rows['tinygrad']['tokens_per_s'] / rows['torch']['tokens_per_s']:.2f} (batch 1), "
              f"{rows[f'tinygrad batch {B}']['tokens_per_s'] / rows[f'torch batch {B}']['tokens_per_s']:.2f} "
              f"(batch {B}); same ids as torch: {r['same_tokens_as_torch']}")
    print(f"  prefill of {r['prefill_tokens']} tokens (and the first id): {r['prefill_ms']:.1f} ms")
    print(f"  a batch row equals its one-by-one decoding: {r['batch_row_equals_one_by_one']}")


if __name__ == "__main__":
    main()
