"""One jitted update of the continual learner, for one fixed set of trainable tensors. Lesson 11.

    loss  = sum(w * -log p(y | x))            weighted cross-entropy: targets shifted once, w from mixing.mixed_batch
          + ewc_lambda / 2 * sum F (theta - theta*)^2          (minimac/ewc.py; zero before the first consolidation)
    grads = loss.gradient(*trainable)         only the trainable tensors: LoRA A/B of one adapter, or every weight
    clip the global norm, AdamW step          all inside one TinyJit: fixed (B, T), lr and lambda are Tensors
                                              (one AdamW per parameter group: LoRA+ gives B a larger lr than A)

A `StepTrainer` exists per adapter (or one for the whole model under strategy "full"), since TinyJit freezes the
Python-level choice of adapter. It also keeps the squared gradients of the last step, which is how the learner
gets the EWC Fisher without compiling a second graph: `fisher` runs the same jitted step with lr = 0 and
lambda = 0 (the weights do not move) and puts the optimizer's state back afterwards. On a 2-core CPU a separately
compiled gradient graph would cost about a minute; a replayed step costs about a second.

With `devices` (full fine-tuning, LearnerConfig(devices=N)) the model's weights are replicated on N devices and each
step's rows are cut across them (minimac/parallel.py); the moments and checkpoints are the same numbers.

Leaves out: which batches to feed (minimac/learner/learner.py, minimac/learner/mixing.py).
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
from tinygrad import Context, Tensor, TinyJit, dtypes
from tinygrad.nn.optim import AdamW, OptimizerGroup

from minimac import lora, lora_variants, parallel
from minimac.device_inputs import DeviceInputs, write_into
from minimac.ewc import EWC, normalize_fisher
from minimac.ops import cross_entropy
from minimac.train import optimizer_step


def param_groups(model: Any, adapter_name: str,
                 loraplus_lr_ratio: float = 1.0) -> list[tuple[list[Tensor], float, float]]:
    """[(tensors, lr multiplier, weight-decay multiplier)] for one adapter's optimizer (minimac/learner/step.py):
    A and B at 1 (in lora.adapter_state_dict's order), or with LoRA+ A at 1 and B at the ratio; then its saved
    modules at lr 1 without weight decay (decay would pull an RMSNorm gain towards 0, not towards its base value).

    >>> [(len(ts), k, wd) for ts, k, wd in param_groups(model, "law", 16)]      # doctest: +SKIP
    [(28, 1.0, 1.0), (28, 16.0, 1.0), (9, 1.0, 0.0)]     # 4 layers x 7 projections; 9 RMSNorm gains
    """
    state, saved = lora.adapter_state_dict(model, adapter_name), lora_variants.saved_state_dict(model, adapter_name)
    pairs = [(k, t) for k, t in state.items() if k not in saved]
    if loraplus_lr_ratio == 1:
        groups = [([t for _, t in pairs], 1.0, 1.0)]
    else:
        # an output bias (lora_embedding.py) starts at 0 and only its own step moves it, as B: B's rate
        fast = [".lora_B." in k or ".lora_bias." in k for k, _ in pairs]
        groups = [([t for (_, t), f in zip(pairs, fast) if not f], 1.0, 1.0),
                  ([t for (_, t), f in zip(pairs, fast) if f], float(loraplus_lr_ratio), 1.0)]
    return groups + ([(list(saved.values()), 1.0, 0.0)] if saved else [])


def check_arrays(key: str, params: list, arrays: dict[str, np.ndarray]) -> None:
    """Saved trainer arrays must fit the tensors `params` (a list, or param_groups' groups) before they are loaded:
    "opt.NNNN" are the tensors, then AdamW's m and v, then two powers. State of another preset or strategy would
    otherwise fail only at the first step, inside tinygrad."""
    tensors = [t for p in params for t in (p[0] if isinstance(p, tuple) else [p])]
    want = [tuple(t.shape) for t in tensors] * 3
    got = [tuple(arrays[k].shape) for k in sorted(k for k in arrays if k.startswith("opt."))][:len(want)]
    if got != want:
        i = next((i for i, (g, w) in enumerate(zip(got, want)) if g != w), min(len(got), len(want)))
        raise ValueError(f"the trainer state does not fit this model: trainer {key!r} has {len(got)} tensors where "
                         f"the model needs {len(want)}, the first mismatch at #{i} "
                         f"({got[i] if i < len(got) else None} vs {want[i] if i < len(want) else None}); "
                         "was it saved with another preset or strategy?")


class StepTrainer:
    """AdamW, EWC and one jitted step for `params` of `model`. `step(x, y, w)` -> (task loss, penalty, grad norm).

    `params` is a list of tensors, or of groups (tensors, lr multiplier, weight-decay multiplier): one AdamW each,
    its lr the step's lr times the multiplier (param_groups: LoRA+'s A at 1, B at the ratio).
    """

    def __init__(self, model: Any, params: list, lr: float, weight_decay: float, max_grad_norm: float,
                 ewc: EWC | None = None, devices: int | tuple[str, ...] = 1):
        groups = params if params and isinstance(params[0], tuple) else [(params, 1.0, 1.0)]
        self.model, self.max_grad_norm, self.ewc = model, max_grad_norm, ewc
        self.params = [p for tensors, _, _ in groups for p in tensors]
        self.devices = parallel.resolve_devices(devices)
        if len(self.devices) > 1:   # before AdamW makes its moments: they are made beside the weights
            if ewc is not None:
                raise ValueError("EWC keeps its anchors and Fisher on one device: train with devices=1")
            parallel.replicate(model, self.devices, self.params)
        self.lr_scales = [float(k) for _, k, _ in groups]
        self.opts = [AdamW(list(ts), lr=lr * k, weight_decay=weight_decay * wd) for ts, k, wd in groups]
        self.opt = self.opts[0]
        self.opt_group = OptimizerGroup(*self.opts)
        # squared gradients of the last step (before clipping): the Fisher's raw material. Buffers, not parameters.
        self.grad_sq = [Tensor.zeros(*p.shape, dtype=dtypes.float32, device=p.device).contiguous().is_param_(False)
                        .realize() for p in self.params] if ewc is not None else []
        self.jit = TinyJit(self._step)
        self._inputs = DeviceInputs(self.devices if len(self.devices) > 1 else None)   # rows cut across devices
        self._lr: float | None = None  # the value in opt.lr's buffer, once set_lr has written it

    def _step(self, x: Tensor, y: Tensor, w: Tensor) -> Tensor:
        with Context(TRAINING=1):
            task = cross_entropy(self.model(x), y, weights=w)  # mixing.mixed_batch's weights: new text and replay
            # in the graph from the start (a zero Fisher before the first consolidation): one capture for every domain
            penalty = self.ewc.penalty(self.params) if self.ewc is not None else Tensor.zeros((), device=task.device)
            grads = (task + penalty).gradient(*self.params)
            for buf, g in zip(self.grad_sq, grads):
                buf.assign(g.float().square())
            norm, updates = optimizer_step(self.opt_group, self.params, grads, self.max_grad_norm)
            stats = Tensor.stack(task.float(), penalty.float(), norm)    # (3,): one host sync per step
            Tensor.realize(stats, *updates, *self.grad_sq)
        return stats

    def set_lr(self, lr: float) -> None:
        """Written into the optimizer's lr buffer: a replayed TinyJit reads the buffer (a Python float would be frozen
        at capture). Skipped when the value has not changed."""
        if lr != self._lr:
            for opt, k in zip(self.opts, self.lr_scales):
                write_into(opt.lr.realize(), np.array([lr * k]))
            self._lr = lr

    def step(self, x: np.ndarray, y: np.ndarray, w: np.ndarray, lr: float) -> tuple[float, float, float]:
        self.set_lr(lr)
        task, penalty, norm = (float(v) for v in self.jit(*self._inputs(x, y, w)).numpy())
        return task, penalty, norm

    # ---- the state a step changes: for the nan guard and for checkpoints ----
    def state(self) -> list[Tensor]:
        """The trainable tensors, then AdamW's moments and bias-correction powers (group after group)."""
        opts = self.opts
        return [*self.params, *[m for o in opts for m in o.m], *[v for o in opts for v in o.v],
                *[o.b1_t for o in opts], *[o.b2_t for o in opts]]

    def snapshot(self) -> list[np.ndarray]:
        return [t.numpy().copy() for t in self.state()]

    def restore(self, arrays: list[np.ndarray]) -> None:
        for t, a in zip(self.state(), arrays, strict=True):
            t.assign(Tensor(a, dtype=t.dtype).to(t.device))   # on several devices: the same copy on each
        Tensor.realize(*self.state())

    def state_arrays(self) -> dict[str, np.ndarray]:
        """For checkpoints: "opt.NNNN" (tensors, moments, powers) and "ewc.<EWC state_dict key>" arrays."""
        out = {f"opt.{i:04d}": a for i, a in enumerate(self.snapshot())}
        if self.ewc is not None:
            out.update({f"ewc.{k}": v.numpy() for k, v in self.ewc.state_dict().items()})
        return out

    def load_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        opt = sorted(k for k in arrays if k.startswith("opt."))
        if len(opt) != len(self.state()):
            raise ValueError(f"trainer state has {len(opt)} optimizer arrays, this trainer needs {len(self.state())}")
        self.restore([arrays[k] for k in opt])
        if self.ewc is not None:
            self.ewc.load_state_dict({k[4:]: v for k, v in arrays.items() if k.startswith("ewc.")})

    # ---- EWC ----
    def fisher(self, batches: Iterable[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> list[Tensor]:
        """Per-batch empirical Fisher (ewc.py's per_sample=False estimate): the mean over batches of the squared
        gradient of the batch loss, normalised per tensor by its maximum (ewc.normalize_fisher). Runs the jitted
        step with lr 0 and lambda 0, so nothing moves; the optimizer state is put back afterwards."""
        saved, lam = self.snapshot(), self.ewc.ewc_lambda
        self.ewc.ewc_lambda = 0.0
        total, n = [np.zeros(p.shape, dtype=np.float64) for p in self.params], 0
        try:
            for x, y, w in batches:
                self.step(x, y, w, lr=0.0)
                for acc, g in zip(total, self.grad_sq):
                    acc += g.numpy()
                n += 1
        finally:
            self.restore(saved)
            self.ewc.ewc_lambda = lam
        if n == 0:
            raise ValueError("the Fisher needs at least one batch")
        return normalize_fisher([Tensor((acc / n).astype(np.float32)) for acc in total])
