"""Four neuromodulators, each a running statistic of the loss that turns one real knob of the learner. Lesson 13.

Source: the seed's NeuromodulationController (seed-analysis §6.3). There, a randomly initialised, never trained MLP
read the hidden states, the trainer never called it (its `hidden` was always None), and of its outputs only the
dopamine "learning_scale" had a consumer. Here each modulator is computed from quantities the learner has:

    dopamine (DA)        reward-prediction error  rpe = (avgL - L) / avgL   (> 0: the loss beat its running average)
                         trace <- (1-k) trace + k rpe;  DA = clip(1 + gain * trace, 0.1, 3)     -> lr = config.lr * DA
    serotonin (5-HT)     stability vs plasticity: when the loss has settled (|fast avg - slow avg| / slow avg below
                         progress_threshold) 5-HT += step, else 5-HT -= step, clamped to [0, 2] (the seed's
                         increase_stability / increase_plasticity); m = 2 ** ((5-HT - 0.5) / 0.5), so 0 -> 0.5x,
                         0.5 -> 1x, 1 -> 2x, 2 -> 8x: replay_ratio = clip(config * m, 0.1, 0.9), ewc_lambda = config * m
    acetylcholine (ACh)  novelty of each new text = its loss before learning / the running average of those losses;
                         its replay items get importance = novelty (0 below novelty_gate: not worth remembering), and
                         replay is drawn per domain with probability proportional to importance
    noradrenaline (NE)   surprise z = (L - mean) / max(std, 1% of mean) over recent losses; NE = 0.3 + running mean
                         of clip(z, 0, 5); arousal = sigmoid(NE) -> generation temperature = base * (1 + gain * (arousal -
                         sigmoid(0.3)))

Echoes: Schultz, Dayan & Montague 1997 (dopamine as reward-prediction error); Doya 2002 "Metalearning and
neuromodulation" (DA ~ learning signal, 5-HT ~ time scale, ACh ~ learning rate of memory, NE ~ exploration);
Hasselmo 2006 (ACh gates the encoding of new memories); Aston-Jones & Cohen 2005 (NE and exploration).
Where the metaphor ends: there are no molecules and no receptors. Each "level" is one float computed from the loss
by the rule above; the names say which knob it turns and which paper inspired the rule, nothing more. The knobs
are ordinary hyperparameters: a scheduler by another name. DA acts on the *next* step (the hook runs after a step).

Leaves out: the seed's context encoder (an untrained MLP: noise) and attention_scale (consumed by nothing).

    >>> nm = Neuromodulation(NeuromodulationConfig(serotonin=False, acetylcholine=False))
    >>> learner = ContinualLearner(model, tok, controllers=[nm])                    # doctest: +SKIP
    >>> learner.generate("Once", temperature=nm.temperature)                          # doctest: +SKIP
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from minimac.neuro.base import NeuroController, check_number, domain_quotas, set_lr_scale


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


@dataclass
class NeuromodulationConfig:
    dopamine: bool = True
    serotonin: bool = True
    acetylcholine: bool = True
    noradrenaline: bool = True
    reward_speed: float = 0.1               # running average of the loss (the "expected" loss); 5-HT's fast average
    dopamine_speed: float = 0.1             # running average of the RPE (the tonic DA trace)
    dopamine_gain: float = 5.0
    dopamine_min: float = 0.1               # seed's dopamine_range
    dopamine_max: float = 3.0
    serotonin_init: float = 0.5             # seed
    serotonin_step: float = 0.01            # seed's increase_stability(a) / increase_plasticity(a) amount
    progress_threshold: float = 0.02        # ~ the noise of a 10-step average of minibatch losses
    replay_min: float = 0.1
    replay_max: float = 0.9
    novelty_speed: float = 0.3
    novelty_gate: float = 0.5
    noradrenaline_init: float = 0.3         # seed
    surprise_speed: float = 0.1
    base_temperature: float = 0.8
    temperature_gain: float = 1.0
    seed: int = 0

    def __post_init__(self):
        n = "NeuromodulationConfig"
        for flag in ("dopamine", "serotonin", "acetylcholine", "noradrenaline"):
            if not isinstance(getattr(self, flag), bool):
                raise TypeError(f"{n}.{flag} must be a bool, got {getattr(self, flag)!r}")
        for name in ("reward_speed", "dopamine_speed", "novelty_speed", "surprise_speed"):
            setattr(self, name, check_number(n, name, getattr(self, name), 0.0, 1.0, low_ok=False))
        for name in ("dopamine_gain", "serotonin_step", "progress_threshold", "novelty_gate", "temperature_gain"):
            setattr(self, name, check_number(n, name, getattr(self, name), 0.0))
        self.dopamine_min = check_number(n, "dopamine_min", self.dopamine_min, 0.0, 1.0, low_ok=False)
        self.dopamine_max = check_number(n, "dopamine_max", self.dopamine_max, 1.0)
        self.serotonin_init = check_number(n, "serotonin_init", self.serotonin_init, 0.0, 2.0, low_ok=False)
        self.replay_min = check_number(n, "replay_min", self.replay_min, 0.0, 1.0)
        self.replay_max = check_number(n, "replay_max", self.replay_max, self.replay_min, 1.0)
        self.noradrenaline_init = check_number(n, "noradrenaline_init", self.noradrenaline_init)
        self.base_temperature = check_number(n, "base_temperature", self.base_temperature, 0.0, low_ok=False)


def dopamine_step(avg_loss: float, trace: float, loss: float, cfg: NeuromodulationConfig) -> tuple[float, float]:
    """(rpe, new trace) for one step; DA = clip(1 + gain * trace). avg_loss is the expectation *before* this loss."""
    rpe = (avg_loss - loss) / avg_loss if avg_loss > 0 else 0.0
    return rpe, (1 - cfg.dopamine_speed) * trace + cfg.dopamine_speed * rpe


def dopamine_level(trace: float, cfg: NeuromodulationConfig) -> float:
    return min(max(1.0 + cfg.dopamine_gain * trace, cfg.dopamine_min), cfg.dopamine_max)


def serotonin_step(level: float, fast: float, slow: float, cfg: NeuromodulationConfig) -> float:
    """Settled loss -> more stability (+step), moving loss -> more plasticity (-step); clamped to [0, 2] (seed)."""
    progress = abs(slow - fast) / slow if slow > 0 else 0.0
    step = cfg.serotonin_step if progress < cfg.progress_threshold else -cfg.serotonin_step
    return min(max(level + step, 0.0), 2.0)


def temperature(ne: float, cfg: NeuromodulationConfig) -> float:
    """Generation temperature from the noradrenaline level; equals base_temperature at the resting level."""
    arousal, rest = _sigmoid(ne), _sigmoid(cfg.noradrenaline_init)
    return max(cfg.base_temperature * (1.0 + cfg.temperature_gain * (arousal - rest)), 1e-3)


class Neuromodulation(NeuroController):
    """Dopamine, serotonin, acetylcholine and noradrenaline (each switchable in the config), as in the docstring."""

    name = "neuromod"
    state_fields = ("rng", "fast", "slow", "mean", "var", "rpe", "da_trace", "ne_trace", "serotonin", "novelty",
                    "novelty_avg", "counts", "_history_seen")

    def __init__(self, config: NeuromodulationConfig | None = None):
        self.config = NeuromodulationConfig() if config is None else config
        if not isinstance(self.config, NeuromodulationConfig):
            raise TypeError(f"config must be a NeuromodulationConfig, got {type(self.config).__name__}")
        c = self.config
        self.rng = np.random.default_rng(c.seed)   # its own: the learner's replay randomness stays untouched
        self.fast = self.slow = self.mean = math.nan
        self.var = 0.0
        self.rpe, self.da_trace, self.ne_trace = 0.0, 0.0, 0.0
        self.serotonin, self.novelty, self.novelty_avg = c.serotonin_init, math.nan, math.nan
        self.counts = {"lr_clamped": 0, "tagged": 0, "gated": 0}
        self._history_seen = 0

    @property
    def dopamine(self) -> float:
        return dopamine_level(self.da_trace, self.config)

    @property
    def noradrenaline(self) -> float:
        return self.config.noradrenaline_init + self.ne_trace

    @property
    def temperature(self) -> float:
        return temperature(self.noradrenaline, self.config)

    def observe(self, loss: float) -> None:
        """Fold one step's loss into every modulator's statistics (host floats only)."""
        c = self.config
        if math.isnan(self.fast):
            self.fast = self.slow = self.mean = loss
        self.rpe, self.da_trace = dopamine_step(self.fast, self.da_trace, loss, c)
        z = (loss - self.mean) / max(math.sqrt(self.var), 0.01 * abs(self.mean), 1e-8)  # floor: no z of 1e4 at step 2
        self.ne_trace = (1 - c.surprise_speed) * self.ne_trace + c.surprise_speed * min(max(z, 0.0), 5.0)
        self.var = (1 - c.surprise_speed) * (self.var + c.surprise_speed * (loss - self.mean) ** 2)
        self.mean = (1 - c.surprise_speed) * self.mean + c.surprise_speed * loss
        self.fast = (1 - c.reward_speed) * self.fast + c.reward_speed * loss
        self.slow = (1 - c.reward_speed / 10) * self.slow + c.reward_speed / 10 * loss
        self.serotonin = serotonin_step(self.serotonin, self.fast, self.slow, c)

    def on_step(self, learner: Any, stats: dict) -> None:
        c, cfg = self.config, learner.config
        if math.isfinite(stats["loss"]):
            self.observe(stats["loss"])
        if c.dopamine:
            self.counts["lr_clamped"] += set_lr_scale(learner, "dopamine", self.dopamine)
        if c.serotonin:
            m = 2.0 ** ((self.serotonin - c.serotonin_init) / 0.5)   # symmetric in log: a halving or a doubling
            if cfg.uses_replay:
                learner.set_replay_ratio(min(max(cfg.replay_ratio * m, c.replay_min), c.replay_max))
            if cfg.uses_ewc:
                learner.set_ewc_lambda(cfg.ewc_lambda * m)
        if c.acetylcholine:
            self.tag_new_items(learner)
        self.publish(stats)

    def on_domain_end(self, learner: Any, domain: str) -> None:
        if self.config.acetylcholine:
            self.tag_new_items(learner)

    def tag_new_items(self, learner: Any) -> int:
        """Give replay items stored since the last call importance = novelty of their text (0 below the gate)."""
        c, fresh = self.config, learner.history[self._history_seen:]
        self._history_seen = len(learner.history)
        by_domain: dict[str, list[float]] = {}
        for entry in fresh:
            before = entry["loss_before"]
            avg = before if math.isnan(self.novelty_avg) else self.novelty_avg
            self.novelty = before / avg if avg > 0 else 1.0
            self.novelty_avg = (1 - c.novelty_speed) * avg + c.novelty_speed * before
            by_domain.setdefault(entry["domain"], []).append(self.novelty)
        tagged = 0
        for i, e in enumerate(learner.replay.experiences):
            if "novelty" in e.metadata or e.domain not in by_domain:
                continue  # already tagged, or stored by remember() (no text was learned: nothing to be novel)
            novelty = float(np.mean(by_domain[e.domain]))
            e.metadata["novelty"] = novelty
            learner.replay.update_importance(i, novelty if novelty >= c.novelty_gate else 0.0)
            self.counts["gated"] += novelty < c.novelty_gate
            tagged += 1
        self.counts["tagged"] += tagged
        return tagged

    def select_replay(self, learner: Any, n: int, new: list | None = None) -> list | None:
        """ACh on: per-domain quotas (as the default draw), then importance-weighted within each domain."""
        if not self.config.acetylcholine or not len(learner.replay):
            return None
        groups: dict[str, list[int]] = {}
        for i, e in enumerate(learner.replay.experiences):
            groups.setdefault(str(e.domain), []).append(i)
        out = []
        for d, k in domain_quotas({d: len(v) for d, v in groups.items()}, n).items():
            idx = np.asarray(groups[d])
            imp = np.array([learner.replay.experiences[i].importance for i in idx], dtype=np.float64)
            pos = idx[imp > 0]
            if len(pos) >= k:   # zero-importance (gated) items only when nothing else is left, as ReplayBuffer.sample
                pick = self.rng.choice(pos, size=k, replace=False, p=imp[imp > 0] / imp[imp > 0].sum())
            else:
                pick = np.concatenate([pos, self.rng.choice(idx[imp == 0], size=k - len(pos), replace=False)])
            out.extend(learner.replay.experiences[i] for i in pick)
        return [out[i] for i in self.rng.permutation(len(out))]

    def readout(self) -> dict[str, float]:
        c, out = self.config, {}
        if c.dopamine:
            out.update(dopamine=self.dopamine, rpe=self.rpe)
        if c.serotonin:
            out.update(serotonin=self.serotonin)
        if c.acetylcholine:
            out.update(acetylcholine=self.novelty, tagged=float(self.counts["tagged"]),
                       gated=float(self.counts["gated"]))
        if c.noradrenaline:
            out.update(noradrenaline=self.noradrenaline, temperature=self.temperature)
        return {**out, "lr_clamped": float(self.counts["lr_clamped"])}
