"""The learner's one config: which continual-learning strategy to run, and its LoRA, replay, EWC and training knobs.
Lesson 11.

A strategy is a named combination of the tools of lessons 08-10:

    strategy             trains                          replay  EWC   adapters
    "full"               every weight of the model       no      no    none (the naive baseline that forgets)
    "full+replay"        every weight of the model       yes     no    none (Avalanche's Replay on Naive)
    "full+replay+ewc"    every weight of the model       yes     yes   none
    "lora"               one LoRA adapter                no      no    one, shared by every domain
    "lora+replay"        one LoRA adapter                yes     no    one
    "lora+replay+ewc"    one LoRA adapter                yes     yes   one (the seeds' recipe)
    "adapter-per-domain" a fresh LoRA adapter per domain no      no    one per domain, routed by name or by loss
                                                                       (the default: it cannot forget, see below)

Leaves out: the training loop itself (minimac/learner/learner.py) and the brain-inspired controllers (minimac/learner/hooks.py).

    >>> LearnerConfig(strategy="lora").lr, LearnerConfig(strategy="full").lr
    (0.0005, 0.0003)
    >>> LearnerConfig(strategy="lora+replay").uses_replay, LearnerConfig(strategy="lora").uses_replay
    (True, False)
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from minimac.learner.schedule import LR_SCHEDULES, lr_factor
from minimac.lora_layer import LoRAConfig

STRATEGIES = ("full", "full+replay", "full+replay+ewc", "lora", "lora+replay", "lora+replay+ewc", "adapter-per-domain")
TARGET_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "w1", "w2", "w3")
# Why two defaults: a LoRA update starts from B = 0 and moves a few hundred thousand numbers, so it tolerates (and
# needs) a larger step than moving every weight of a pretrained model. 5e-4 is A's rate: with LoRA+ (ratio 16) B
# learns at 8e-3. Full fine-tuning at 3e-4 keeps more of the base; a lone expert learns more at 1e-3 (measured).
DEFAULT_LR = {"lora": 5e-4, "full": 3e-4}


@dataclass
class LearnerConfig:
    """Everything `ContinualLearner` needs besides the model and tokenizer. Laptop-sized defaults.

    Steps per `learn_from_text` call (unless `steps` or `epochs` is passed to it): `epochs` passes over the text's
    chunks, at `batch_size - replay rows` new chunks per step, but never fewer than `min_steps`, so that even one
    sentence (one chunk) is seen `min_steps` times and is actually learned.
    """
    # The default: one adapter per domain, routed by likelihood. On the full-mode benchmark (5 domains, H100) it
    # forgets nothing; with a rank-96 delta on the tied embedding (lora_embedding.py) beside r 16 on the projections
    # it reached about 0.98 of a per-domain full fine-tune's gain on its worst domain, at 13.1% of the base's
    # parameters per domain; without it (r 24 alone, the previous default) 0.73-0.74: the adapters lacked the
    # vocabulary, not rank (docs/forgetting.md). The output bias added little beside it and a merged model cannot
    # hold it, so it stays off. lora+replay+ewc, the seeds' recipe, forgot 11% there.
    strategy: str = "adapter-per-domain"
    # LoRA (PEFT names): scaling = lora_alpha / r, or lora_alpha / sqrt(r) with use_rslora
    r: int = 16
    lora_alpha: float = 16.0
    lora_dropout: float = 0.0
    target_modules: tuple[str, ...] = TARGET_MODULES
    # stronger adapters (minimac/lora_variants.py): rsLoRA scaling alpha / sqrt(r), LoRA+ (B's lr = ratio x A's),
    # PiSSA's start ("pissa") and per-adapter copies of the RMSNorm gains / embedding (PEFT's modules_to_save)
    use_rslora: bool = True
    loraplus_lr_ratio: float = 16.0
    init_lora_weights: bool | str = True
    modules_to_save: tuple[str, ...] = ()
    # the tied embedding / lm_head per adapter (minimac/lora_embedding.py): a rank-embedding_r delta E + s B A used by
    # the lookup and the output projection (0 = none), and a bias over the vocabulary on the logits
    embedding_r: int = 96
    output_bias: bool = False
    # replay (Avalanche names): replay_ratio is the share of every batch's rows, and of its loss, given to replay
    mem_size: int = 2000
    replay_ratio: float = 0.5
    policy: str = "reservoir"
    # EWC (Avalanche names): "online" keeps one running Fisher (F <- decay_factor * F + F_new), "separate" one per
    # domain. Why not the seed's 1000: with a Fisher normalised to max 1 per tensor (ewc.normalize_fisher) it froze a
    # LoRA adapter outright (nano, 40 steps of code: bits per byte did not move); 10 still cut forgetting sharply.
    ewc_lambda: float = 10.0
    mode: str = "online"
    decay_factor: float = 1.0
    fisher_samples: int = 32
    # training; learning_rate None means DEFAULT_LR for the strategy (see `lr`)
    learning_rate: float | None = None
    batch_size: int = 8
    seq_len: int = 64
    epochs: float = 1.0
    min_steps: int = 30
    max_grad_norm: float = 1.0
    weight_decay: float = 0.01
    # the learning rate within one learn_from_text call (see lr_factor): a linear warmup over warmup_ratio of its
    # steps, then "constant", or a "cosine" / "linear" decay to min_lr_ratio x lr at the last step
    lr_schedule: str = "cosine"
    warmup_ratio: float = 0.05
    min_lr_ratio: float = 0.1
    # early stopping: hold out the last holdout_fraction of the new text's chunks (0 = off), check its loss every
    # eval_every steps (None: a tenth of the call's steps), stop after `patience` checks without a better one and
    # keep the best weights seen
    holdout_fraction: float = 0.0
    eval_every: int | None = None
    patience: int = 3
    # automatic routing (adapter-per-domain; minimac/learner/routing.py): the loss of every adapter and of the bare
    # base on the prompt's first route_windows windows of seq_len tokens; an adapter wins only if it beats the bare
    # base by route_margin nats per token
    route_windows: int = 4
    route_margin: float = 0.05
    seed: int = 0
    # several devices (minimac/parallel.py): each step's rows split across N devices, the weights replicated. Full
    # fine-tuning and replay only: EWC's anchors and Fisher and the LoRA adapters live on one device.
    devices: int | tuple[str, ...] = 1

    def __post_init__(self):
        if self.strategy not in STRATEGIES:
            raise ValueError(f"unknown strategy {self.strategy!r}; choose one of: {', '.join(STRATEGIES)}")
        self.target_modules = tuple(self.target_modules)
        _positive_int(self, "r", "mem_size", "fisher_samples", "batch_size", "seq_len", "min_steps", "patience",
                      "route_windows")
        _nonneg_int(self, "seed")
        _number(self, "lora_alpha", low=0.0, low_ok=False)
        _number(self, "lora_dropout", low=0.0, high=1.0, high_ok=False)
        _number(self, "replay_ratio", low=0.0, high=1.0)
        _number(self, "ewc_lambda", low=0.0)
        _number(self, "decay_factor", low=0.0, high=1.0)
        _number(self, "epochs", low=0.0, low_ok=False)
        _number(self, "max_grad_norm", low=0.0, low_ok=False)
        _number(self, "weight_decay", low=0.0)
        _number(self, "loraplus_lr_ratio", low=0.0, low_ok=False)
        _number(self, "warmup_ratio", low=0.0, high=1.0, high_ok=False)
        _number(self, "min_lr_ratio", low=0.0, high=1.0)
        _number(self, "holdout_fraction", low=0.0, high=0.5)
        _number(self, "route_margin", low=0.0)
        if self.eval_every is not None:
            _positive_int(self, "eval_every")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"lr_schedule must be one of {', '.join(LR_SCHEDULES)}, got {self.lr_schedule!r}")
        self.modules_to_save = tuple(self.modules_to_save)
        LoRAConfig(self.r, self.lora_alpha, self.lora_dropout, self.target_modules, self.use_rslora,
                   self.init_lora_weights, self.modules_to_save, self.embedding_r,
                   self.output_bias)  # its own checks: use_rslora, init, modules_to_save, embedding_r
        if self.learning_rate is not None:
            _number(self, "learning_rate", low=0.0, low_ok=False)
        if not self.target_modules or not all(isinstance(m, str) and m for m in self.target_modules):
            raise ValueError(f"target_modules must be a non-empty list of module names like {TARGET_MODULES}, "
                             f"got {self.target_modules!r}")
        if self.mode not in ("online", "separate"):
            raise ValueError(f"mode must be 'online' or 'separate' (EWC), got {self.mode!r}")
        if self.policy not in ("reservoir", "importance", "uniform"):
            raise ValueError(f"policy must be one of reservoir, importance, uniform (replay), got {self.policy!r}")
        _check_devices(self)
        if self.uses_replay and self.batch_size < 2:
            raise ValueError(f"batch_size must be at least 2 with strategy {self.strategy!r}: one row for the new "
                             "text and one for replay")

    @property
    def lora_config(self) -> LoRAConfig:
        """The LoRAConfig of every adapter this learner adds."""
        return LoRAConfig(self.r, self.lora_alpha, self.lora_dropout, self.target_modules, self.use_rslora,
                          self.init_lora_weights, self.modules_to_save, self.embedding_r, self.output_bias)

    def lr_factor(self, step: int, steps: int) -> float:
        """lr's multiplier at step `step` (0-based) of a call of `steps` steps (minimac/learner/schedule.py)."""
        return lr_factor(step, steps, self.lr_schedule, self.warmup_ratio, self.min_lr_ratio)

    @property
    def uses_lora(self) -> bool:
        return not self.strategy.startswith("full")

    @property
    def uses_replay(self) -> bool:
        return "replay" in self.strategy

    @property
    def uses_ewc(self) -> bool:
        return self.strategy.endswith("+ewc")

    @property
    def per_domain(self) -> bool:
        return self.strategy == "adapter-per-domain"

    @property
    def lr(self) -> float:
        """The learning rate actually used: `learning_rate`, or the strategy's default (LoRA or full)."""
        if self.learning_rate is not None:
            return float(self.learning_rate)
        return DEFAULT_LR["lora" if self.uses_lora else "full"]

    def replay_rows(self, replay_ratio: float | None = None) -> int:
        """Rows of a batch given to replay: round(batch_size * ratio), but always leaving one row for the new text.

        The seed's int(B * (1 - ratio)) truncated ratios 0.3 and 0.4 to the same split; rounding does not.
        `replay_rows()` -> 4 for batch 8, ratio 0.5; 0 for a strategy without replay.
        """
        ratio = self.replay_ratio if replay_ratio is None else replay_ratio
        if not self.uses_replay:
            return 0
        return min(self.batch_size - 1, math.floor(self.batch_size * ratio + 0.5))

    def default_steps(self, n_chunks: int, epochs: float | None = None, replay_ratio: float | None = None) -> int:
        """max(min_steps, ceil(epochs * n_chunks / new rows per step)): 1 chunk -> min_steps; 1000 chunks -> 250."""
        new_rows = self.batch_size - self.replay_rows(replay_ratio)
        return max(self.min_steps, math.ceil((self.epochs if epochs is None else epochs) * n_chunks / new_rows))

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["target_modules"], d["modules_to_save"] = list(self.target_modules), list(self.modules_to_save)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> LearnerConfig:
        """The config of `to_dict`. A field the dict lacks (a checkpoint saved before it existed) gets the value that
        reproduces how that checkpoint was trained (LEGACY), not today's default."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown LearnerConfig field(s) {unknown}; known fields: {sorted(known)}")
        return cls(**{**{k: v for k, v in LEGACY.items() if k not in d}, **d})


# What a config saved before these fields existed trained with (from_dict fills them in).
LEGACY = {"use_rslora": False, "loraplus_lr_ratio": 1.0, "init_lora_weights": True, "modules_to_save": (),
          "lr_schedule": "constant", "warmup_ratio": 0.0, "min_lr_ratio": 0.1, "holdout_fraction": 0.0,
          "eval_every": None, "patience": 3, "route_windows": 1, "route_margin": 0.0, "embedding_r": 0,
          "output_bias": False}


def _check_devices(cfg: LearnerConfig) -> None:
    """devices: a number >= 1 or a tuple of names; more than one only for "full" and "full+replay", and only with a
    batch size they divide."""
    if isinstance(cfg.devices, list):   # from a checkpoint's JSON
        cfg.devices = tuple(cfg.devices)
    n = cfg.devices if isinstance(cfg.devices, int) and not isinstance(cfg.devices, bool) else None
    if isinstance(cfg.devices, tuple) and cfg.devices and all(isinstance(d, str) and d for d in cfg.devices):
        n = len(cfg.devices)
    if n is None or n < 1:
        raise ValueError(f"devices must be a positive number of devices or a tuple of device names, "
                         f"got {cfg.devices!r}")
    if n > 1 and cfg.strategy not in ("full", "full+replay"):
        raise ValueError(f"devices={n}: strategy {cfg.strategy!r} runs on one device; several devices are supported "
                         "for full fine-tuning only (strategies 'full' and 'full+replay'), since EWC's anchors and "
                         "Fisher and the LoRA adapters are kept on one device")
    if cfg.batch_size % n:
        raise ValueError(f"batch_size {cfg.batch_size} is not divisible by devices={n}: each device takes an equal "
                         f"share of the rows; use a batch size that is a multiple of {n}")


def _positive_int(cfg: LearnerConfig, *names: str) -> None:
    for name in names:
        v = getattr(cfg, name)
        if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
            raise ValueError(f"{name} must be a positive integer, got {v!r}")


def _nonneg_int(cfg: LearnerConfig, *names: str) -> None:
    for name in names:
        v = getattr(cfg, name)
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise ValueError(f"{name} must be an integer >= 0, got {v!r}")


def _number(cfg: LearnerConfig, name: str, low: float | None = None, high: float | None = None,
            low_ok: bool = True, high_ok: bool = True) -> None:
    v = getattr(cfg, name)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise ValueError(f"{name} must be a finite number, got {v!r}")
    too_low = low is not None and (v < low or (v == low and not low_ok))
    too_high = high is not None and (v > high or (v == high and not high_ok))
    if too_low or too_high:
        lo = "" if low is None else f"{low} {'<=' if low_ok else '<'} "
        hi = "" if high is None else f" {'<=' if high_ok else '<'} {high}"
        raise ValueError(f"{name} must satisfy {lo}{name}{hi}, got {v!r}")
    setattr(cfg, name, float(v))
