"""Pretraining: next-token loss, warmup + cosine learning rate, a jitted AdamW step, resumable checkpoints. Lesson 07.

One training step on a (B, T+1) batch of token ids:

    x, y = shift_labels(batch)              # x = batch[:, :-1], y = batch[:, 1:]: shifted ONCE
    loss = cross_entropy(model(x), y)       # mean of -log p(y_t | x_<=t)
    grads, clip to global norm 1.0, AdamW step at lr_at(step, config)

`Trainer` runs that step under `TinyJit` (fixed (B, T), so it compiles once), evaluates now and then, writes an atomic
checkpoint (weights + optimizer moments + step + RNG state + configs) that resumes bit-identically, stops on a
non-finite loss without touching the last good checkpoint, and saves on Ctrl-C. Batches come from a function of the
step number (`batches(step) -> (B, T+1) int array`), so the data position is the step itself.
The loss is minimac.ops.cross_entropy. `TrainConfig(devices=N)` splits every batch across N devices, the weights
replicated and the gradients summed across them by tinygrad (minimac/parallel.py); a checkpoint holds one copy of
each tensor, whatever N, so a run resumes on another number of devices. Not covered: gradient accumulation. Mixed
precision is `minimac.fast.linear.set_matmul_dtype`; the terminal readout is in `pretrain.py`.
"""
from __future__ import annotations

import json
import math
import signal
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields, is_dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tinygrad import Context, Device, Tensor, TinyJit, dtypes
from tinygrad.nn.optim import AdamW, OptimizerGroup
from tinygrad.nn.state import get_parameters, get_state_dict

from minimac import parallel
from minimac.device_inputs import DeviceInputs, write_into
from minimac.files import atomic_write, read_safetensors, write_safetensors
from minimac.ops import clip_by_global_norm, cross_entropy

CHECKPOINT = "checkpoint.safetensors"


def shift_labels(batch: Tensor) -> tuple[Tensor, Tensor]:
    """(B, T+1) ids -> inputs (B, T), targets (B, T); the target at t is token t+1: [[5, 6, 7]] -> [[5, 6]], [[6, 7]]"""
    if batch.ndim != 2 or batch.shape[1] < 2:
        raise ValueError(f"expected a (B, T+1) batch of token ids with T+1 >= 2, got shape {batch.shape}")
    return batch[:, :-1], batch[:, 1:]


def optimizer_step(opt: Any, params: list[Tensor], grads: list[Tensor], max_grad_norm: float) -> tuple[Tensor, list]:
    """Clip `grads` to a global norm of `max_grad_norm`, give them to `opt` and schedule its update (no realize, so it
    fits inside a jitted step). Returns (the norm before clipping, the tensors to realize). Used by pretraining's
    Trainer and the learner's StepTrainer."""
    grads, norm = clip_by_global_norm(grads, max_grad_norm)
    for p, g in zip(params, grads, strict=True):
        p.grad = g
    return norm, opt.schedule_step()


@dataclass
class TrainConfig:
    """Everything the loop needs; laptop-sized defaults. lr warms up linearly, then decays along a cosine to min_lr."""
    batch_size: int = 8
    seq_len: int = 128
    lr: float = 3e-4
    min_lr: float = 3e-5
    warmup_steps: int = 50
    max_steps: int = 1000
    weight_decay: float = 0.1            # on matrices only; norms' gains are not decayed (as in nanoGPT)
    betas: tuple[float, float] = (0.9, 0.95)
    eps: float = 1e-8
    grad_clip: float = 1.0               # global-norm clipping; 0 turns it off
    eval_every: int = 100                # 0: evaluate only at the end
    eval_batches: int = 8
    ckpt_every: int = 200                # 0: save only at the end (and on Ctrl-C)
    devices: int | tuple[str, ...] = 1   # N devices of the default backend, or their names: ("CPU:0", "CPU:1")

    def __post_init__(self):
        self.betas = tuple(self.betas)
        if isinstance(self.devices, list):   # from a checkpoint's JSON
            self.devices = tuple(self.devices)
        n = self.devices if isinstance(self.devices, int) and not isinstance(self.devices, bool) else None
        if isinstance(self.devices, tuple) and self.devices and all(isinstance(d, str) for d in self.devices):
            n = len(self.devices)
        if n is None or n < 1:
            raise ValueError(f"devices must be a positive number of devices or a tuple of device names, "
                             f"got {self.devices!r}")
        if isinstance(self.batch_size, int) and self.batch_size % n:
            raise ValueError(f"batch_size {self.batch_size} is not divisible by devices={n}: each device takes an "
                             f"equal share of the rows; use a batch size that is a multiple of {n}")
        for name in ("batch_size", "seq_len", "max_steps"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"{name} must be a positive integer, got {getattr(self, name)!r}")
        for name in ("warmup_steps", "eval_every", "eval_batches", "ckpt_every"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 0:
                raise ValueError(f"{name} must be a non-negative integer, got {getattr(self, name)!r}")
        if not (math.isfinite(self.lr) and self.lr > 0 and math.isfinite(self.min_lr) and 0 <= self.min_lr <= self.lr):
            raise ValueError(f"need finite 0 <= min_lr <= lr and lr > 0, got lr={self.lr}, min_lr={self.min_lr}")
        if self.weight_decay < 0 or self.grad_clip < 0 or not all(0 <= b < 1 for b in self.betas):
            raise ValueError("weight_decay and grad_clip must be >= 0 and betas in [0, 1)")


def lr_at(step: int, config: TrainConfig) -> float:
    """Learning rate for 0-based `step`: linear warmup to lr over warmup_steps, cosine down to min_lr at max_steps.

    With lr=1.0, min_lr=0.1, warmup_steps=10, max_steps=110: step 0 -> 0.1, step 9 -> 1.0, step 60 -> 0.55, 110 -> 0.1.
    """
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    if step >= config.max_steps:
        return config.min_lr
    progress = (step - config.warmup_steps) / (config.max_steps - config.warmup_steps)      # 0 -> 1
    return config.min_lr + 0.5 * (1.0 + math.cos(math.pi * progress)) * (config.lr - config.min_lr)


class NonFiniteLossError(RuntimeError):
    """The loss or gradient norm became nan/inf; the weights are poisoned, so nothing was saved."""


def _params(model: Any) -> list[Tensor]:
    params = model.parameters() if hasattr(model, "parameters") else get_parameters(model)
    return list({id(p): p for p in params}.values())  # tied weights appear once


class Trainer:
    """Jitted pretraining of `model` on `batches(step) -> (B, T+1)` ids, with eval, checkpoints and guards.

    >>> trainer = Trainer(model, TrainConfig(max_steps=100), batches, out_dir="runs/nano")   # doctest: +SKIP
    >>> trainer.fit()                                                                         # doctest: +SKIP
    'done'
    """

    def __init__(self, model: Any, config: TrainConfig, batches: Callable[[int], np.ndarray],
                 evaluate: Callable[[Any], dict] | None = None, out_dir: str | Path | None = None,
                 params: list[Tensor] | None = None, jit: bool = True, meta: dict | None = None):
        self.model, self.config, self.batches, self.evaluate = model, config, batches, evaluate
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.meta = meta or {}            # extra JSON stored in the checkpoint (the CLI puts the corpus there)
        self.params = params if params is not None else _params(model)
        # several devices: a copy of every weight on each, before the optimizer makes its moments beside them
        self.devices = parallel.resolve_devices(config.devices)
        parallel.check_batch(config.batch_size, self.devices)
        if len(self.devices) > 1 or isinstance(config.devices, tuple) or isinstance(self.params[0].device, tuple):
            parallel.replicate(model, self.devices, self.params)   # (one device named, or back from several: moved)
        decay = [p for p in self.params if p.ndim >= 2]
        no_decay = [p for p in self.params if p.ndim < 2]
        b1, b2 = config.betas
        self.optimizers = [AdamW(group, lr=config.lr, b1=b1, b2=b2, eps=config.eps, weight_decay=wd)
                           for group, wd in ((decay, config.weight_decay), (no_decay, 0.0)) if group]
        self.opt = OptimizerGroup(*self.optimizers)
        self.step = 0                     # steps done so far = index of the next step
        self.history: list[dict] = []     # one entry per step: step, loss, lr, grad_norm (+ eval results)
        self._step_fn = TinyJit(self._train_step) if jit else self._train_step
        self._inputs = DeviceInputs(None if config.devices == 1 else self.devices)   # rows cut across devices
        self._stop_requested = False

    def _train_step(self, batch: Tensor) -> Tensor:
        x, y = shift_labels(batch)
        with Context(TRAINING=1):
            loss = cross_entropy(self.model(x), y)
            # loss.gradient, not backward(): only the trainable tensors get gradients (not RoPE tables, frozen weights)
            norm, updates = optimizer_step(self.opt, self.params, loss.gradient(*self.params), self.config.grad_clip)
            stats = Tensor.stack(loss.float(), norm)                    # (2,): read back with one host sync per step
            Tensor.realize(stats, *updates)
        return stats

    def train_step(self, batch: np.ndarray) -> tuple[float, float]:
        """One optimizer step on a (B, T+1) int batch; returns (loss, grad norm before clipping) as floats."""
        want = (self.config.batch_size, self.config.seq_len + 1)
        if tuple(batch.shape) != want:
            raise ValueError(f"batch has shape {tuple(batch.shape)}; the jitted step needs (batch_size, seq_len+1) = "
                             f"{want}")
        for opt in self.optimizers:  # a buffer written in place, so the JIT reads the new value (a float would freeze)
            write_into(opt.lr.realize(), np.array([lr_at(self.step, self.config)]))
        (batch,) = self._inputs(np.asarray(batch, dtype=np.int32))
        loss, norm = (float(v) for v in self._step_fn(batch).numpy())
        self.step += 1
        return loss, norm

    def fit(self, until_step: int | None = None, max_seconds: float | None = None,
            log: Callable[[dict], None] | None = None) -> str:
        """Train until `until_step` (default max_steps) or `max_seconds`; returns 'done', 'time' or 'interrupted'.

        Raises NonFiniteLossError (after saving nothing) if the loss or gradient norm stops being finite.
        """
        until = self.config.max_steps if until_step is None else until_step
        tokens_per_step = self.config.batch_size * self.config.seq_len
        start, status, self._stop_requested = time.perf_counter(), "done", False
        recent: deque[float] = deque(maxlen=20)   # end times of the last steps: the rate leaves out compile time
        previous = signal.signal(signal.SIGINT, self._on_sigint) if _main_thread() else None
        try:
            while self.step < until:
                if self._stop_requested:
                    status = "interrupted"
                    break
                if max_seconds is not None and time.perf_counter() - start >= max_seconds:
                    status = "time"
                    break
                lr = lr_at(self.step, self.config)
                loss, norm = self.train_step(self.batches(self.step))
                if not (math.isfinite(loss) and math.isfinite(norm)):
                    where = f"; the last good checkpoint in {self.out_dir} is kept" if self.out_dir else ""
                    raise NonFiniteLossError(f"loss became {loss} (grad norm {norm}) at step {self.step} with "
                                             f"lr {lr:.3g}{where}. Try a lower --lr or a smaller grad_clip.")
                elapsed = time.perf_counter() - start
                recent.append(elapsed)
                record = {"step": self.step, "loss": loss, "lr": lr, "grad_norm": norm}
                if self.evaluate is not None and ((self.config.eval_every and self.step % self.config.eval_every == 0)
                                                  or self.step == self.config.max_steps):
                    record["eval"] = self.evaluate(self.model)
                self.history.append(record)
                if self.out_dir is not None and self.config.ckpt_every and self.step % self.config.ckpt_every == 0:
                    self.save()
                if log is not None:
                    per_step = (recent[-1] - recent[0]) / (len(recent) - 1) if len(recent) > 1 else elapsed
                    rate, eta = tokens_per_step / max(per_step, 1e-9), (until - self.step) * per_step
                    log({**record, "tokens_per_s": rate, "elapsed_s": elapsed, "eta_s": eta, "until": until})
        finally:
            if previous is not None:
                signal.signal(signal.SIGINT, previous)
        if self.out_dir is not None:
            self.save()
        return status

    def _on_sigint(self, signum, frame):
        if self._stop_requested:          # a second Ctrl-C means "now"
            raise KeyboardInterrupt
        self._stop_requested = True       # finish this step (params half-updated are never saved), then save and stop

    # ----- checkpoints -----
    def state_dict(self) -> dict[str, Tensor]:
        model_state = self.model.state_dict() if hasattr(self.model, "state_dict") else get_state_dict(self.model)
        unique: dict[int, str] = {}
        for k, v in model_state.items():
            unique.setdefault(id(v), k)   # a tied weight is stored once, under its first name
        state = {f"model.{k}": model_state[k] for k in unique.values()}
        for i, opt in enumerate(self.optimizers):
            state.update({f"optim.{i}.{k}": v for k, v in get_state_dict({"b1_t": opt.b1_t, "b2_t": opt.b2_t,
                                                                            "m": opt.m, "v": opt.v}).items()})
        return state

    def save(self, out_dir: str | Path | None = None) -> Path:
        """Write out_dir/checkpoint.safetensors atomically (temp file in the same folder, then os.replace)."""
        folder = Path(out_dir) if out_dir is not None else self.out_dir
        if folder is None:
            raise ValueError("no out_dir given to Trainer or save()")
        folder.mkdir(parents=True, exist_ok=True)
        meta = {"step": self.step, "train_config": asdict(self.config), "history": self.history,
                "model_config": _config_dict(self.model), "rng": _rng_state(), **self.meta}
        state = {k: v.numpy() for k, v in self.state_dict().items()}
        # each step's loss is computed before its update, so the last update is checked here: never write nan or inf
        if bad := [k for k, a in state.items() if a.dtype.kind == "f" and not np.isfinite(a).all()]:
            raise NonFiniteLossError(f"not saving {folder / CHECKPOINT}: {bad[0]} (and {len(bad) - 1} more) holds nan "
                                     "or inf after the last update; the previous checkpoint, if any, is untouched")
        atomic_write(folder / CHECKPOINT, lambda tmp: write_safetensors(tmp, state, {"minimac": json.dumps(meta)}))
        return folder / CHECKPOINT

    def load(self, out_dir: str | Path) -> dict:
        """Restore weights, optimizer moments, step, history and RNG from out_dir; returns the checkpoint's metadata."""
        meta = read_checkpoint_meta(out_dir)
        saved = read_safetensors(Path(out_dir) / CHECKPOINT)
        mine = self.state_dict()
        for k, v in mine.items():
            if k not in saved:
                raise ValueError(f"checkpoint in {out_dir} has no tensor {k!r}: it was made for a different model")
            if tuple(saved[k].shape) != tuple(v.shape):
                raise ValueError(f"checkpoint in {out_dir}: {k} has shape {tuple(saved[k].shape)}, this model needs "
                                 f"{tuple(v.shape)}: it was made for a different model config")
        for k, v in mine.items():   # one copy in the file, whatever the number of devices it was written from
            v.assign(Tensor(np.ascontiguousarray(saved[k])).to(v.device).cast(v.dtype)).realize()
        self.step, self.history = meta["step"], meta.get("history", [])
        _set_rng_state(meta.get("rng"))
        if hasattr(self._step_fn, "reset"):
            self._step_fn.reset()         # a captured JIT would keep replaying against the old buffers
        return meta


def read_checkpoint_meta(out_dir: str | Path) -> dict:
    """The JSON stored beside the tensors: step, train_config, model_config, history, rng, plus what the CLI added."""
    path = Path(out_dir) / CHECKPOINT
    if not path.exists():
        raise FileNotFoundError(f"no {CHECKPOINT} in {out_dir}: nothing to resume (train with --out {out_dir} first)")
    _, metadata = read_safetensors(path, with_metadata=True)
    return json.loads(metadata["minimac"])


def _config_dict(model: Any) -> dict | None:
    config = getattr(model, "config", None)
    return asdict(config) if is_dataclass(config) else None


def train_config_from_dict(d: dict) -> TrainConfig:
    return TrainConfig(**{f.name: d[f.name] for f in fields(TrainConfig) if f.name in d})


def _main_thread() -> bool:
    import threading
    return threading.current_thread() is threading.main_thread()


def _rng_state() -> dict:
    # tinygrad keeps its random stream as a seed plus a per-device counter (private attributes in 0.14); dropout draws
    # from it, so a bit-identical resume needs both.
    counters = {d: [int(v) for v in c.numpy()] for d, c in Tensor._device_rng_counters.items()}
    return {"seed": int(Tensor._seed), "counters": counters}


def _set_rng_state(state: dict | None) -> None:
    if not state:
        return
    Tensor.manual_seed(state["seed"])
    for device, counter in state["counters"].items():
        if device not in Device._opened_devices and device != Device.DEFAULT:
            continue                      # a run resumed on fewer devices: that device's stream is not used
        Tensor._next_counter(device, 0)   # creates this device's seed and counter tensors
        Tensor._device_rng_counters[device].assign(Tensor(counter, dtype=dtypes.uint32, device=device)).realize()

