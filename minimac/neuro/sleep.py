"""Sleep: offline consolidation between domains. Noisy replay ("dreams"), a Hebbian boost of the LoRA directions the
dreams use, and pruning of weak adapter weights. Lesson 15.

Source: the seed's SleepConsolidation (seed-analysis §6.7). Per cycle it flipped 5% of each replayed sequence's
tokens to random ids, ran a forward pass and threw the output away, then, for each LoRA layer with `lora_A`/`lora_B`
attributes, applied

    seed Hebbian:  D = B A,  mask = |D| > median |D|,  B <- B + hebbian_lr (sign(D) * mask) A^T
    pruning:       zero the entries of A and B with |w| < 0.01

and reported connections_strengthened / connections_pruned. Its LinearWithLoRA kept A and B one level down (in
`.lora`), so the check never matched: 0 strengthened, 0 pruned, every time. FIX: our LoRA layers are found by type
(minimac.lora.LoRALinear, the active adapter), and the counts are non-zero whenever there is something to do.
A second problem: the seed's Hebbian step never reads the dream, so the replay did not matter. Our default rule
(rule="replay") makes the dreams drive it. For each LoRA layer, u = x A^T (the adapter's r "directions") is
recorded on the dreams' tokens; C = sum over tokens of u u^T (r, r) is the co-activation of the directions, and

    replay Hebbian:  B <- B + hebbian_lr * B (C / (trace(C) / r) - I)

is a pre-times-post rule in the adapter's own basis (post = B u, pre = u; Hebb 1949, Oja 1982): directions the
dreams activate more than average grow, the others shrink, the total roughly kept. Pruning is relative by default
(|w| < pruning_threshold * rms(w) of its tensor): the seed's absolute 0.01 zeroes 28% of a fresh A at d = 768.
Pruned weights can regrow at the next domain (no mask is kept): a global downscaling of weak synapses in sleep, as
in Tononi & Cirelli's synaptic homeostasis hypothesis (2006), not a structural prune. Echoes: Wilson & McNaughton
1994 (replay in sleep), Hinton et al. 1995 (wake-sleep).

Where the metaphor ends: a "dream" is a replayed chunk with 5% of its tokens replaced at random, run forward once
without gradients; "sleep" is a function called between domains (the learner's on_domain_end). Nothing is trained
by the loss here. Leaves out: the seed's unused replay_noise_std and dream_temperature.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from tinygrad import Tensor

from minimac.lora_layer import LoRALinear
from minimac.neuro.base import NeuroController, check_int, check_number

ATTENTION, FFN = ("q_proj", "k_proj", "v_proj", "o_proj"), ("w1", "w2", "w3")


@dataclass
class SleepConfig:
    num_replay_cycles: int = 8       # seed 100 (its CLI 50)
    dream_rows: int = 8              # episodes per cycle (seed: up to 32)
    flip_prob: float = 0.05          # seed (hard-coded there)
    rule: str = "replay"             # "replay" (dreams drive it) or "seed" (magnitude drift)
    hebbian_lr: float = 0.05         # seed 0.001
    pruning_threshold: float = 0.05  # times the tensor's rms; with prune_relative=False an absolute value (seed 0.01)
    prune_relative: bool = True
    seed: int = 0

    def __post_init__(self):
        n = "SleepConfig"
        check_int(n, "num_replay_cycles", self.num_replay_cycles)
        check_int(n, "dream_rows", self.dream_rows)
        self.flip_prob = check_number(n, "flip_prob", self.flip_prob, 0.0, 1.0)
        if self.rule not in ("replay", "seed"):
            raise ValueError(f"{n}.rule must be 'replay' or 'seed', got {self.rule!r}")
        self.hebbian_lr = check_number(n, "hebbian_lr", self.hebbian_lr, 0.0, 1.0)
        self.pruning_threshold = check_number(n, "pruning_threshold", self.pruning_threshold, 0.0)

    @classmethod
    def seed_defaults(cls) -> SleepConfig:
        return cls(num_replay_cycles=100, dream_rows=32, rule="seed", hebbian_lr=0.001, pruning_threshold=0.01,
                   prune_relative=False)


def flip_tokens(tokens: np.ndarray, prob: float, vocab_size: int, rng: np.random.Generator,
                mask: np.ndarray | None = None) -> np.ndarray:
    """A copy of `tokens` with each (unmasked) position replaced by a uniform random id with probability `prob`."""
    flip = rng.random(tokens.shape) < prob
    if mask is not None:
        flip &= mask.astype(bool)
    return np.where(flip, rng.integers(0, vocab_size, tokens.shape), tokens).astype(tokens.dtype)


def seed_hebbian(A: np.ndarray, B: np.ndarray, lr: float) -> np.ndarray:
    """The seed's rule: D = B A, B + lr (sign(D) * [|D| > median |D|]) A^T. Reads no data at all."""
    D = B @ A                                                        # (out, in)
    return B + lr * (np.sign(D) * (np.abs(D) > np.median(np.abs(D)))) @ A.T


def replay_hebbian(B: np.ndarray, C: np.ndarray, lr: float) -> np.ndarray:
    """Ours: B + lr B (C / (trace(C) / r) - I) with C the dreams' co-activation of the r directions."""
    r, tr = C.shape[0], np.trace(C)
    return B if tr <= 0 else B + lr * B @ (C / (tr / r) - np.eye(r))


def prune(w: np.ndarray, threshold: float, relative: bool = True) -> tuple[np.ndarray, int]:
    """Zero the entries with |w| < threshold (times rms(w) when relative); returns (w, how many non-zeros died)."""
    cut = threshold * float(np.sqrt(np.mean(w ** 2))) if relative else threshold
    dead = (np.abs(w) < cut) & (w != 0)
    return np.where(dead, 0.0, w), int(dead.sum())


def lora_sites(model: Any) -> list[tuple[Any, str, LoRALinear]]:
    """(parent, attribute, layer) for every LoRA layer whose active adapter runs (enabled, not merged)."""
    out = []
    for block in model.layers:
        for parent, names in ((block.attention, ATTENTION), (block.feed_forward, FFN)):
            for name in names:
                layer = getattr(parent, name, None)
                if isinstance(layer, LoRALinear) and layer.active_adapter and not layer.disabled \
                        and layer.merged_adapter is None:
                    out.append((parent, name, layer))
    return out


class _Recorder:
    """Stands in for a LoRA layer during a dream: runs it and keeps its input."""

    def __init__(self, layer: LoRALinear):
        self.layer, self.inputs = layer, []

    def __call__(self, x: Tensor) -> Tensor:
        self.inputs.append(x)
        return self.layer(x)


class Sleep(NeuroController):
    """Runs `consolidate` at every domain end (after EWC's Fisher); counts are in `last` and the readout."""

    name = "sleep"
    state_fields = ("rng", "sleeps", "totals", "last")

    def __init__(self, config: SleepConfig | None = None):
        self.config = SleepConfig() if config is None else config
        if not isinstance(self.config, SleepConfig):
            raise TypeError(f"config must be a SleepConfig, got {type(self.config).__name__}")
        self.rng = np.random.default_rng(self.config.seed)
        self.sleeps = 0
        self.totals = {"connections_strengthened": 0, "connections_weakened": 0, "connections_pruned": 0}
        self.last: dict[str, int] = {}

    def on_domain_end(self, learner: Any, domain: str) -> None:
        self.last = self.consolidate(learner.model, learner.replay.experiences, learner.config.seq_len)

    def dream(self, model: Any, items: list, seq_len: int, sites: list) -> list[np.ndarray]:
        """One cycle: noisy replay of `dream_rows` random episodes; returns each site's C = sum u u^T (r, r)."""
        c = self.config
        pick = self.rng.choice(len(items), size=min(c.dream_rows, len(items)), replace=False)
        tokens, mask = np.zeros((c.dream_rows, seq_len), dtype=np.int32), np.zeros((c.dream_rows, seq_len))
        for row, i in enumerate(pick):
            ids = items[i].input_ids[:seq_len]
            tokens[row, :len(ids)], mask[row, :len(ids)] = ids, 1.0
        tokens = flip_tokens(tokens, c.flip_prob, model.config.vocab_size, self.rng, mask)
        recorders = [_Recorder(layer) for _, _, layer in sites]
        try:
            for (parent, name, _), rec in zip(sites, recorders):
                setattr(parent, name, rec)
            model.hidden_states(Tensor(tokens))   # the output is not used: the recorded inputs are
        finally:
            for parent, name, layer in sites:
                setattr(parent, name, layer)
        m = Tensor(mask.astype(np.float32))[..., None]                                   # (rows, T, 1)
        cs = []
        for rec, (_, _, layer) in zip(recorders, sites):
            u = (rec.inputs[0].detach() @ layer.lora_A[layer.active_adapter].T) * m       # (rows, T, r)
            cs.append(u.reshape(-1, u.shape[-1]).T @ u.reshape(-1, u.shape[-1]))          # (r, r)
        Tensor.realize(*cs)
        return [x.numpy().astype(np.float64) for x in cs]

    def consolidate(self, model: Any, items: list, seq_len: int) -> dict[str, int]:
        """Sleep once over the replay items; returns this sleep's counts (all 0 with no items or no LoRA)."""
        c, sites = self.config, lora_sites(model)
        counts = {"replay_cycles": 0, "dreams": 0, "connections_strengthened": 0, "connections_weakened": 0,
                  "connections_pruned": 0}
        if not items or not sites:
            return counts
        co = [np.zeros((s[2].lora_A[s[2].active_adapter].shape[0],) * 2) for s in sites]
        for _ in range(c.num_replay_cycles):
            co = [a + b for a, b in zip(co, self.dream(model, items, seq_len, sites))]
            counts["replay_cycles"] += 1
            counts["dreams"] += min(c.dream_rows, len(items))
        for (_, _, layer), C in zip(sites, co):
            name = layer.active_adapter
            A, B = (layer.lora_A[name].numpy().astype(np.float64), layer.lora_B[name].numpy().astype(np.float64))
            if c.rule == "replay":
                new_B = replay_hebbian(B, C, c.hebbian_lr)
            else:   # the seed applied its step once per dream
                new_B = B
                for _ in range(counts["dreams"]):
                    new_B = seed_hebbian(A, new_B, c.hebbian_lr)
            counts["connections_strengthened"] += int((np.abs(new_B) > np.abs(B)).sum())
            counts["connections_weakened"] += int((np.abs(new_B) < np.abs(B)).sum())
            new_A, pruned_a = prune(A, c.pruning_threshold, c.prune_relative)
            new_B, pruned_b = prune(new_B, c.pruning_threshold, c.prune_relative)
            counts["connections_pruned"] += pruned_a + pruned_b
            layer.lora_A[name].assign(Tensor(new_A.astype(np.float32))).realize()
            layer.lora_B[name].assign(Tensor(new_B.astype(np.float32))).realize()
        self.sleeps += 1
        for k in self.totals:
            self.totals[k] += counts[k]
        return counts

    def on_step(self, learner: Any, stats: dict) -> None:
        self.publish(stats)

    def readout(self) -> dict[str, float]:
        return {"sleeps": float(self.sleeps), **{k: float(v) for k, v in self.totals.items()},
                **{f"last_{k}": float(v) for k, v in self.last.items()}}
