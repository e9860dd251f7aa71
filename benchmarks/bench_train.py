"""Training speed: minimac's jitted tinygrad step against the same model in PyTorch, on the same machine.

What is compared (both sides: same preset and shapes, float32, AdamW with the same groups, betas, eps, weight decay,
global-norm clipping at 1.0, the same warmup + cosine learning rate, the same batches in the same order):

    train     minimac.train.Trainer.train_step (the library's TinyJit step)  vs  PyTorch eager (and torch.compile)
    lora      ContinualLearner.learn_from_text, strategy "lora", 1,000 examples of 64 tokens  vs  the same LoRA
              update written in PyTorch (frozen base, r=8 on q/k/v/o/w1/w2/w3, AdamW on A and B only)
    generate  minimac's KV-cached greedy decoding (minimac.generate)  vs  a PyTorch KV-cache decode loop: the rows of
              benchmarks/bench_generate.py (batch 1 and 8, with an adapter, sampling, the step's kernels and host share)

Before timing, the PyTorch model gets a copy of minimac's weights and both compute the loss of one batch: the two
must agree (relative difference printed, < 1e-4 expected in float32). The losses of the last timed step are printed
too: the two runs see the same batches, so they should still agree closely.

Timing: kernel compilation and JIT capture run first and are reported apart ("compile"). The timed steps are
interleaved: `--rounds` rounds of `--steps` steps of each framework in turn, so tinygrad and PyTorch share the same
machine load. Figures are medians over every timed step. The machine load (os.getloadavg) is printed at start and end:
on a shared machine, compare only figures measured back to back. Each step includes reading the loss back to the host.

Peak memory: with `--memory`, each framework also runs alone in a child process and reports its peak resident set
(ru_maxrss, CPU) or its allocator's peak (CUDA: torch.cuda.max_memory_allocated, tinygrad's GlobalCounters.mem_used).

    python benchmarks/bench_train.py --preset nano                         # tinygrad CPU vs torch CPU
    python benchmarks/bench_train.py --preset tiny --batch-size 16 --seq-len 256 --compile --memory
    python benchmarks/bench_train.py --preset nano --what lora generate
    DEV=CUDA python benchmarks/bench_train.py --preset small --device cuda   # torch on CUDA, tinygrad on DEV=CUDA
    JITBEAM=2 python benchmarks/bench_train.py --preset nano              # tinygrad BEAM-searches jitted kernels (cached on disk)

PyTorch is a benchmark-only dependency (`pip install torch`); minimac never imports it.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run from a checkout without installing
sys.path.insert(0, str(ROOT / "benchmarks"))

# ---------------------------------------------------------------------------------------------------------------------
# The PyTorch twin of minimac.model.Transformer (same names, so state dicts copy across one to one)


def torch_modules():
    import torch
    import torch.nn.functional as F
    from torch import nn

    class RMSNorm(nn.Module):
        def __init__(self, dim, eps):
            super().__init__()
            self.eps, self.weight = eps, nn.Parameter(torch.ones(dim))

        def forward(self, x):
            xf = x.float()
            return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight.float()).to(x.dtype)

    def rotate_half(x):
        d = x.shape[-1] // 2
        return torch.cat((-x[..., d:], x[..., :d]), dim=-1)

    class Attention(nn.Module):
        def __init__(self, c):
            super().__init__()
            self.hq, self.hkv, self.hd = c.num_query_heads, c.num_kv_heads, c.head_dim
            self.q_proj = nn.Linear(c.d_model, self.hq * self.hd, bias=False)
            self.k_proj = nn.Linear(c.d_model, self.hkv * self.hd, bias=False)
            self.v_proj = nn.Linear(c.d_model, self.hkv * self.hd, bias=False)
            self.o_proj = nn.Linear(self.hq * self.hd, c.d_model, bias=False)

        def forward(self, x, cos, sin, cache=None, start_pos=0):
            B, T, _ = x.shape
            q = self.q_proj(x).view(B, T, self.hq, self.hd).transpose(1, 2)
            k = self.k_proj(x).view(B, T, self.hkv, self.hd).transpose(1, 2)
            v = self.v_proj(x).view(B, T, self.hkv, self.hd).transpose(1, 2)
            cos, sin = cos[start_pos:start_pos + T], sin[start_pos:start_pos + T]
            q, k = q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin
            causal = T > 1
            if cache is not None:  # (k, v) lists of one tensor each, grown by concatenation
                if cache[0] is not None:
                    k, v = torch.cat((cache[0], k), 2), torch.cat((cache[1], v), 2)
                    causal = False if T == 1 else None
                cache[0], cache[1] = k, v
            if causal is None:  # several new tokens after a cache: the triangle sits at the end
                S = k.shape[2]
                mask = torch.ones(T, S, dtype=torch.bool, device=x.device).tril(S - T)
                out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, enable_gqa=True)
            else:
                out = F.scaled_dot_product_attention(q, k, v, is_causal=causal, enable_gqa=True)
            return self.o_proj(out.transpose(1, 2).reshape(B, T, self.hq * self.hd))

    class SwiGLU(nn.Module):
        def __init__(self, c):
            super().__init__()
            self.w1 = nn.Linear(c.d_model, c.d_ff, bias=False)
            self.w2 = nn.Linear(c.d_ff, c.d_model, bias=False)
            self.w3 = nn.Linear(c.d_model, c.d_ff, bias=False)

        def forward(self, x):
            return self.w2(F.silu(self.w1(x)) * self.w3(x))

    class Block(nn.Module):
        def __init__(self, c):
            super().__init__()
            self.attention_norm, self.attention = RMSNorm(c.d_model, c.norm_eps), Attention(c)
            self.ffn_norm, self.feed_forward = RMSNorm(c.d_model, c.norm_eps), SwiGLU(c)

        def forward(self, x, cos, sin, cache=None, start_pos=0):
            h = x + self.attention(self.attention_norm(x), cos, sin, cache, start_pos)
            return h + self.feed_forward(self.ffn_norm(h))

    class TorchTransformer(nn.Module):
        def __init__(self, c):
            super().__init__()
            from minimac.rope import rope_tables
            self.config = c
            self.token_embedding = nn.Embedding(c.vocab_size, c.d_model)
            self.layers = nn.ModuleList([Block(c) for _ in range(c.num_layers)])
            self.norm = RMSNorm(c.d_model, c.norm_eps)
            self.lm_head = nn.Linear(c.d_model, c.vocab_size, bias=False)
            if c.tie_embeddings:
                self.lm_head.weight = self.token_embedding.weight
            cos, sin = rope_tables(c.head_dim, c.max_seq_len, c.rope_base)
            self.register_buffer("cos", torch.tensor(cos, dtype=torch.float32), persistent=False)
            self.register_buffer("sin", torch.tensor(sin, dtype=torch.float32), persistent=False)

        def forward(self, tokens, caches=None, start_pos=0, last_only=False):
            x = self.token_embedding(tokens)
            for i, layer in enumerate(self.layers):
                x = layer(x, self.cos, self.sin, None if caches is None else caches[i], start_pos)
            x = self.norm(x)
            return self.lm_head(x[:, -1:] if last_only else x).float()

    class LoRALinear(nn.Module):
        """PEFT's LoRA: y = x W^T + x A^T B^T * alpha / r, W frozen, B zeros (minimac/lora.py does the same)."""

        def __init__(self, base, r, alpha):
            super().__init__()
            self.base, self.scaling = base, alpha / r
            base.weight.requires_grad_(False)
            bound = 1 / math.sqrt(base.in_features)
            dev = base.weight.device
            self.lora_A = nn.Parameter(torch.empty(r, base.in_features, device=dev).uniform_(-bound, bound))
            self.lora_B = nn.Parameter(torch.zeros(base.out_features, r, device=dev))

        def forward(self, x):
            return self.base(x) + (x @ self.lora_A.T @ self.lora_B.T) * self.scaling

    return torch, F, TorchTransformer, LoRALinear


def autocast(torch, args):
    """torch's mixed precision for --matmul-dtype (matmuls in bfloat16/float16, float32 weights): a context."""
    if args.matmul_dtype == "float32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=args.device.split(":")[0], dtype=getattr(torch, args.matmul_dtype))


def numpy_weights(tg_model) -> dict:
    return {k: v.numpy().copy() for k, v in tg_model.state_dict().items()}


def copy_weights(weights: dict, torch_model, torch):
    """minimac's weights (a numpy state dict) -> torch, by name; the tied lm_head follows token_embedding."""
    state = {k: torch.from_numpy(v.copy()) for k, v in weights.items()}
    missing, unexpected = torch_model.load_state_dict(state, strict=False)
    assert not unexpected and set(missing) <= {"lm_head.weight"}, (missing, unexpected)


def inject_torch_lora(model, r, alpha, targets):
    _, _, _, LoRALinear = torch_modules()
    for p in model.parameters():
        p.requires_grad_(False)
    for layer in model.layers:
        for parent in (layer.attention, layer.feed_forward):
            for name in targets:
                if hasattr(parent, name):
                    setattr(parent, name, LoRALinear(getattr(parent, name), r, alpha))
    return [p for n, p in model.named_parameters() if "lora_" in n]


# ---------------------------------------------------------------------------------------------------------------------
# helpers


def tiny_sync(device: str):
    from tinygrad import Device
    Device[device].synchronize()


def torch_sync(torch, device):
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def median_ms(times):
    return 1000 * statistics.median(times) if times else float("nan")


def interleave(runners: dict, rounds: int, steps: int) -> dict[str, list[float]]:
    """Round-robin blocks of `steps` timed calls per runner, `rounds` times. Returns seconds per call per runner."""
    times = {name: [] for name in runners}
    for _ in range(rounds):
        for name, fn in runners.items():
            for _ in range(steps):
                t0 = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - t0)
    return times


def batches_for(vocab, B, T, seed=0):
    import numpy as np
    return lambda step: np.random.default_rng([seed, step]).integers(0, vocab, (B, T + 1)).astype(np.int32)


# ---------------------------------------------------------------------------------------------------------------------
# 1. the pretraining step


def bench_train(args, cfg) -> dict:
    from tinygrad import Device, GlobalCounters, Tensor

    from minimac.model import Transformer
    from minimac.train import TrainConfig, Trainer, cross_entropy, lr_at, shift_labels

    B, T = args.batch_size, args.seq_len
    tcfg = TrainConfig(batch_size=B, seq_len=T, max_steps=10_000, warmup_steps=10, eval_every=0, ckpt_every=0)
    batches = batches_for(cfg.vocab_size, B, T)
    runners, compile_s, result = {}, {}, {"tokens_per_step": B * T}
    want = set(args.only or ["tinygrad", "torch"] + (["torch.compile"] if args.compile else []))

    Tensor.manual_seed(args.seed)
    tg_model = Transformer(cfg)
    initial = numpy_weights(tg_model)  # torch starts from these, whatever tinygrad has trained meanwhile

    if "tinygrad" in want:
        trainer = Trainer(tg_model, tcfg, batches)
        tg_state = {"step": 0, "loss": None, "peak": 0}

        def tg_step():
            tg_state["loss"], _ = trainer.train_step(batches(tg_state["step"]))
            tg_state["step"] += 1
            tg_state["peak"] = max(tg_state["peak"], GlobalCounters.mem_used)

        x, y = shift_labels(Tensor(batches(10**6)))
        tg_loss0 = cross_entropy(tg_model(x), y).item()  # eager forward on the initial weights (for the check)
        t0 = time.perf_counter()
        for _ in range(3):  # run, capture, first replay
            tg_step()
        tiny_sync(Device.DEFAULT)
        compile_s["tinygrad"] = time.perf_counter() - t0
        runners["tinygrad"] = tg_step

    torch_flavours = [f for f in ("torch", "torch.compile") if f in want]
    if torch_flavours:
        torch, F, TorchTransformer, _ = torch_modules()
        torch.manual_seed(args.seed)
        dev = args.device
        for flavour in torch_flavours:
            model = TorchTransformer(cfg)
            copy_weights(initial, model, torch)
            model.to(dev)
            params = list(dict.fromkeys(model.parameters()))
            decay, no_decay = [p for p in params if p.ndim >= 2], [p for p in params if p.ndim < 2]
            opt = torch.optim.AdamW([{"params": decay, "weight_decay": tcfg.weight_decay},
                                     {"params": no_decay, "weight_decay": 0.0}], lr=tcfg.lr, betas=tcfg.betas,
                                    eps=tcfg.eps)

            def loss_fn(m, xb, yb):
                logits = m(xb)
                return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), yb.reshape(-1), ignore_index=-1)

            fwd = torch.compile(loss_fn) if flavour == "torch.compile" else loss_fn
            state = {"step": 0, "loss": None}

            def torch_step(model=model, opt=opt, fwd=fwd, state=state, params=params):
                b = torch.from_numpy(batches(state["step"])).long().to(dev)
                for g in opt.param_groups:
                    g["lr"] = lr_at(state["step"], tcfg)
                with autocast(torch, args):
                    loss = fwd(model, b[:, :-1], b[:, 1:])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(params, tcfg.grad_clip)
                opt.step()
                state["loss"] = loss.item()  # the host sync, as minimac's step reads its loss back
                state["step"] += 1

            if flavour == "torch":
                xb = torch.from_numpy(batches(10**6)).long().to(dev)
                with torch.no_grad():
                    torch_loss0 = loss_fn(model, xb[:, :-1], xb[:, 1:]).item()
                result["loss_check"] = {"tinygrad": tg_loss0 if "tinygrad" in want else None, "torch": torch_loss0}
            t0 = time.perf_counter()
            for _ in range(3):
                torch_step()
            torch_sync(torch, dev)
            compile_s[flavour] = time.perf_counter() - t0
            runners[flavour] = torch_step
            result.setdefault("_states", {})[flavour] = state

    load0 = os.getloadavg()
    times = interleave(runners, args.rounds, args.steps)
    load1 = os.getloadavg()
    result.update(load_start=load0, load_end=load1, compile_s=compile_s, frameworks={})
    for name, ts in times.items():
        ms = median_ms(ts)
        result["frameworks"][name] = {"step_ms": ms, "tokens_per_s": B * T / (ms / 1000),
                                      "step_ms_min": 1000 * min(ts), "n": len(ts)}
    if "tinygrad" in runners:
        result["frameworks"]["tinygrad"]["device_mem_mb"] = tg_state["peak"] / 2**20
        result["frameworks"]["tinygrad"]["last_loss"] = tg_state["loss"]
    for flavour, st in result.pop("_states", {}).items():
        result["frameworks"][flavour]["last_loss"] = st["loss"]
        if args.device.startswith("cuda"):
            import torch
            result["frameworks"][flavour]["device_mem_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return result


# ---------------------------------------------------------------------------------------------------------------------
# 2. the LoRA update of the continual learner


def lora_text(n_tokens: int) -> str:
    """Real text (Tiny Shakespeare from MINIMAC_DATA or ../shared/data) of n_tokens bytes: the byte-level tokenizer
    makes one token per byte, so the example count is exact. Falls back to a repeated sentence offline."""
    for base in (os.environ.get("MINIMAC_DATA"), ROOT.parent / "shared" / "data", ROOT / "shared" / "data"):
        if base and (Path(base) / "tinyshakespeare").is_dir():
            files = sorted((Path(base) / "tinyshakespeare").glob("*.txt"))
            if files:
                text = files[0].read_bytes()[:n_tokens].decode("ascii", errors="replace")
                return text.encode("ascii", errors="replace").decode()
    sentence = "The quick brown fox jumps over the lazy dog. "
    return (sentence * (n_tokens // len(sentence) + 1))[:n_tokens]


def bench_lora(args, cfg) -> dict:
    import numpy as np
    from tinygrad import Tensor

    from minimac.learner import ContinualLearner
    from minimac.learner.mixing import chunk_ids, mixed_batch, new_chunk_schedule
    from minimac.learner.strategies import LearnerConfig
    from minimac.model import Transformer
    from minimac.tokenizer import Tokenizer

    n_examples, seq = args.lora_examples, 64
    text = lora_text(n_examples * seq - 1)  # [eot] + text = n*seq tokens -> n windows of seq+1
    lcfg = LearnerConfig(strategy="lora", seq_len=seq)
    out = {"examples": n_examples, "seq_len": seq, "batch_size": lcfg.batch_size}
    Tensor.manual_seed(args.seed)
    model = Transformer(cfg)
    base_weights = numpy_weights(model)  # before LoRA wraps the layers (and renames their weights)
    tok = Tokenizer()
    learner = ContinualLearner(model, tok, lcfg)
    t0 = time.perf_counter()
    learner.learn_from_text(text[:2000], domain="warmup", steps=3)  # compiles the step and the evaluation
    out["compile_s"] = time.perf_counter() - t0
    load0 = os.getloadavg()
    r = learner.learn_from_text(text, domain="bench")
    out.update(load_start=load0, load_end=os.getloadavg(), steps=r["steps"], examples_seen=r["examples"])
    out["tinygrad"] = {"seconds": r["seconds"], "step_seconds": r["step_seconds"],
                       "step_ms": 1000 * r["step_seconds"] / r["steps"], "loss_before": r["loss_before"],
                       "loss_after": r["loss_after"]}

    # the same update in PyTorch: same steps, same rows, same weighted loss
    torch, F, TorchTransformer, _ = torch_modules()
    tmodel = TorchTransformer(cfg)
    copy_weights(base_weights, tmodel, torch)  # the frozen base; LoRA B starts at 0 on both sides
    tmodel.to(args.device)
    params = inject_torch_lora(tmodel, lcfg.r, lcfg.lora_alpha, lcfg.target_modules)
    opt = torch.optim.AdamW(params, lr=lcfg.lr, weight_decay=lcfg.weight_decay)
    ids = [tok.eot_id, *tok.encode(text)]
    chunks = chunk_ids(ids, seq)
    schedule = new_chunk_schedule(len(chunks), lcfg.batch_size, r["steps"], np.random.default_rng(0))
    batches = [mixed_batch([chunks[i] for i in rows], [], lcfg.batch_size, seq, 0.0) for rows in schedule]

    def step(x, y, w):
        with autocast(torch, args):
            logits = tmodel(torch.from_numpy(x).long().to(args.device))
        yt = torch.from_numpy(y).long().to(args.device)
        nll = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), yt.reshape(-1).clamp(min=0), reduction="none")
        loss = (nll * torch.from_numpy(w).to(args.device).reshape(-1)).sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, lcfg.max_grad_norm)
        opt.step()
        return loss.item()

    for b in batches[:3]:
        step(*b)
    t0 = time.perf_counter()
    for b in batches:
        step(*b)
    torch_sync(torch, args.device)
    dt = time.perf_counter() - t0
    out["torch"] = {"step_seconds": dt, "step_ms": 1000 * dt / len(batches)}
    out["load_end_torch"] = os.getloadavg()
    return out


# ---------------------------------------------------------------------------------------------------------------------
# 3. cached generation


def bench_generate(args, cfg) -> dict:
    """benchmarks/bench_generate.py's measurements (the fast decoding path against a PyTorch KV-cache loop)."""
    import bench_generate
    ns = argparse.Namespace(preset=args.preset, prompt_len=args.prompt_len, new_tokens=args.new_tokens,
                            batch=args.generate_batch, prefill=512, repeats=3, skip_torch=False)
    return bench_generate.run(ns)


# ---------------------------------------------------------------------------------------------------------------------


def peak_memory(args) -> dict:
    """Each framework alone in a child process: its peak RSS (MB)."""
    out = {}
    for only in ["tinygrad", "torch"]:
        cmd = [sys.executable, __file__, "--preset", args.preset, "--batch-size", str(args.batch_size),
               "--seq-len", str(args.seq_len), "--steps", "2", "--rounds", "1", "--only", only, "--child",
               "--device", args.device] + (["--vocab-size", str(args.vocab_size)] if args.vocab_size else [])
        res = subprocess.run(cmd, capture_output=True, text=True, check=False)
        line = [ln for ln in res.stdout.splitlines() if ln.startswith("{")]
        out[only] = json.loads(line[-1])["peak_rss_mb"] if line else f"failed: {res.stderr[-300:]}"
    return out


def print_train(preset, r):
    fw = r["frameworks"]
    lc = r.get("loss_check")
    if lc and lc["tinygrad"] is not None:
        rel = abs(lc["tinygrad"] - lc["torch"]) / abs(lc["torch"])
        print(f"  loss on the same weights and batch: tinygrad {lc['tinygrad']:.6f}  torch {lc['torch']:.6f}  "
              f"(rel diff {rel:.1e})")
    print(f"  load average {r['load_start'][0]:.2f} -> {r['load_end'][0]:.2f};  compile/capture: " +
          ", ".join(f"{k} {v:.1f} s" for k, v in r["compile_s"].items()))
    print(f"  {'framework':<14}{'step ms':>10}{'best ms':>10}{'tokens/s':>11}{'last loss':>11}{'mem MB':>9}")
    for name, f in fw.items():
        mem = f.get("device_mem_mb", r.get("peak_rss_mb", {}).get(name, float("nan")))
        mem = mem if isinstance(mem, (int, float)) else float("nan")
        print(f"  {name:<14}{f['step_ms']:>10.1f}{f['step_ms_min']:>10.1f}{f['tokens_per_s']:>11.0f}"
              f"{f.get('last_loss') or float('nan'):>11.4f}{mem:>9.0f}")
    if "tinygrad" in fw and "torch" in fw:
        print(f"  tinygrad / torch eager tokens/s: {fw['tinygrad']['tokens_per_s'] / fw['torch']['tokens_per_s']:.3f}")
    if "peak_rss_mb" in r:
        print(f"  peak RSS alone (MB): {r['peak_rss_mb']}")


def main(argv=None) -> dict:
    import minimac.fast
    minimac.fast.install()  # the same numbers, faster; MINIMAC_PLAIN=1 keeps the plain path
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--preset", default="nano", choices=["nano", "tiny", "small", "medium", "large"])
    ap.add_argument("--vocab-size", type=int, default=None, help="override the preset's vocab size")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--seq-len", type=int, default=128)
    ap.add_argument("--steps", type=int, default=5, help="timed steps per framework per round")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds")
    ap.add_argument("--device", default=None, help="torch device (cpu, cuda); tinygrad follows DEV. Default: "
                    "cuda if DEV=CUDA/NV else cpu")
    ap.add_argument("--what", nargs="+", default=["train"], choices=["train", "lora", "generate"])
    ap.add_argument("--compile", action="store_true", help="also time torch.compile")
    ap.add_argument("--memory", action="store_true", help="also measure each framework's peak RSS alone")
    ap.add_argument("--only", nargs="+", default=None, choices=["tinygrad", "torch", "torch.compile"])
    ap.add_argument("--lora-examples", type=int, default=1000)
    ap.add_argument("--prompt-len", type=int, default=32)
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--generate-batch", type=int, default=8, help="--what generate: the batch of the batch row")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's own)")
    ap.add_argument("--tf32", action="store_true", help="float32 matmuls on tensor cores (TF32) in both frameworks: "
                    "tinygrad's ALLOW_TF32=1 and torch's allow_tf32 (CUDA only; neither uses TF32 by default)")
    # minimac.fast.linear.MATMUL_DTYPES, spelled out: importing it would import tinygrad before --tf32 can set ALLOW_TF32
    ap.add_argument("--matmul-dtype", default="float32", choices=["float32", "bfloat16", "float16"],
                    help="mixed precision: matmul operands in this dtype, float32 sums, weights and optimizer in both "
                    "frameworks (minimac.fast.linear.set_matmul_dtype; torch.autocast)")
    ap.add_argument("--json", default=None, metavar="PATH")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.device is None:
        args.device = "cuda" if os.environ.get("DEV", "").split(":")[0] in ("CUDA", "NV") else "cpu"
    if args.threads:
        import torch
        torch.set_num_threads(args.threads)
    if args.tf32:  # before tinygrad is imported: it reads ALLOW_TF32 from the environment once
        os.environ["ALLOW_TF32"] = "1"
        import torch
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True

    import tinygrad
    from tinygrad import Device

    from minimac.fast.linear import set_matmul_dtype
    from minimac.model import ModelConfig

    set_matmul_dtype(args.matmul_dtype)

    over = {"vocab_size": args.vocab_size} if args.vocab_size else {}
    cfg = ModelConfig.from_preset(args.preset, **over)
    if args.seq_len > cfg.max_seq_len:
        ap.error(f"--seq-len {args.seq_len} is longer than the preset's max_seq_len {cfg.max_seq_len}")
    if args.child:
        r = bench_train(args, cfg)
        print(json.dumps({"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
        return r

    import torch
    info = {"machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
            "tinygrad": tinygrad.__version__ if hasattr(tinygrad, "__version__") else "0.14",
            "tinygrad_device": Device.DEFAULT, "torch": torch.__version__, "torch_device": args.device,
            "torch_threads": torch.get_num_threads(), "preset": args.preset, "config": cfg.to_dict(),
            "batch": [args.batch_size, args.seq_len], "env": {k: v for k, v in os.environ.items()
                                                              if k in ("BEAM", "MINIMAC_BEAM", "DEV", "JITBEAM", "ALLOW_TF32")},
            "matmul_dtype": args.matmul_dtype}
    print(f"{args.preset}: d_model {cfg.d_model}, {cfg.num_layers} layers, vocab {cfg.vocab_size}, batch "
          f"{args.batch_size}x{args.seq_len}; tinygrad on {Device.DEFAULT}, torch {torch.__version__} on "
          f"{args.device} ({torch.get_num_threads()} threads); {os.cpu_count()} CPUs")
    results = {"info": info}
    if "train" in args.what:
        r = results["train"] = bench_train(args, cfg)
        if args.memory:
            r["peak_rss_mb"] = peak_memory(args)
        print("train step:")
        print_train(args.preset, r)
    if "lora" in args.what:
        r = results["lora"] = bench_lora(args, cfg)
        print(f"LoRA learn_from_text, {r['examples']} examples of {r['seq_len']} tokens, {r['steps']} steps of "
              f"{r['batch_size']}x{r['seq_len']} (load {r['load_start'][0]:.2f} -> {r['load_end'][0]:.2f}):")
        t, th = r["tinygrad"], r["torch"]
        print(f"  tinygrad: {t['seconds']:.1f} s in all ({t['step_seconds']:.1f} s of steps, {t['step_ms']:.1f} ms "
              f"a step), loss {t['loss_before']:.3f} -> {t['loss_after']:.3f}; compile {r['compile_s']:.1f} s")
        print(f"  torch:    {th['step_seconds']:.1f} s of steps ({th['step_ms']:.1f} ms a step)")
    if "generate" in args.what:
        import bench_generate as generate_rows  # the module; bench_generate here is this file's function
        results["generate"] = bench_generate(args, cfg)
        generate_rows.print_result(results["generate"])
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1, default=str))
    return results


if __name__ == "__main__":
    main()
