"""Hippocampal replay selection: sparse codes of stored texts (pattern separation) and recall by similarity (pattern
completion), used in place of random sampling to pick what to replay. Lesson 15.

Source: the seed's HippocampalMemory (seed-analysis §6.6), which was never connected to the replay buffer ("replaces
random sampling with intelligent memory selection" was false). Its two formulas, kept:

    pattern separation (dentate gyrus): code = relu(h W + b), W: (d, 4d); keep the k = int(0.02 * 4d) largest
                                        entries, zero the rest  -> about 2% of 4d units active
    pattern completion (CA3 recall):    score_i = cos(code(query), key_i) * importance_i; take the top k

Here h is the mean over a text's tokens of `model.hidden_states` (the final-normed state, (d,)); W and b are a fixed
random projection (PyTorch's Linear init U(+-1/sqrt(d)), seeded; the seed's was random and never trained either).
Every replay item gets its key when first seen (the trace is laid down once, at encoding, with the model of that
moment). At each step the cue is the batch's new text: the hippocampus recalls, within each domain of the buffer,
the `recall_pool` stored episodes most similar to it, and replay draws its per-domain quota uniformly from them.
Why similar ones: interference is worst between similar inputs, so those are the old memories the current update
is most likely to overwrite (the reasoning of MIR, Aljundi et al. 2019, with similarity as a cheap proxy).
Per-domain quotas (as the learner's default draw) keep every domain represented; only the choice inside a domain
changes. Echoes: Marr 1971; McClelland, McNaughton & O'Reilly 1995 (complementary learning systems); Rolls 2013.

Where the metaphor ends: the "dentate gyrus" is one random matrix and a top-k, "CA3" is a table of numpy vectors
and a cosine; nothing is learned here, and the "episodes" are the replay buffer's chunks.
The cue: the learner calls `select_replay(learner, n, new=chunks)` with the step's new chunks; called without them
(an older caller), it uses the most recently stored items as the cue (the previous text: a weaker proxy).
Leaves out: the seed's CA3 write pointer and consolidate_memories (the replay buffer already stores and evicts).
"""
from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from tinygrad import Tensor, TinyJit

from minimac import lora
from minimac.neuro.base import NeuroController, check_int, check_number, domain_quotas


@dataclass
class HippocampusConfig:
    expansion_factor: int = 4          # seed: DG width = 4 d
    sparsity: float = 0.02             # seed: 2% active
    recall_pool: int = 16              # nearest episodes per domain that replay draws from
    importance_weighted: bool = True   # seed's recall(importance_weighted=True)
    encode_rows: int = 8               # rows per encoding forward (fixed shape: kernels are reused)
    seed: int = 0

    def __post_init__(self):
        n = "HippocampusConfig"
        check_int(n, "expansion_factor", self.expansion_factor)
        self.sparsity = check_number(n, "sparsity", self.sparsity, 0.0, 1.0, low_ok=False)
        check_int(n, "recall_pool", self.recall_pool)
        check_int(n, "encode_rows", self.encode_rows)
        if not isinstance(self.importance_weighted, bool):
            raise TypeError(f"{n}.importance_weighted must be a bool, got {self.importance_weighted!r}")


def dentate_projection(d_model: int, expansion_factor: int = 4, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A fixed random (W (d, e d), b (e d,)) with PyTorch's Linear init, U(-1/sqrt(d), 1/sqrt(d))."""
    rng, bound = np.random.default_rng(seed), 1 / math.sqrt(d_model)
    W = rng.uniform(-bound, bound, (d_model, expansion_factor * d_model)).astype(np.float32)
    return W, rng.uniform(-bound, bound, expansion_factor * d_model).astype(np.float32)


def pattern_separation(h: np.ndarray, W: np.ndarray, b: np.ndarray, sparsity: float = 0.02) -> np.ndarray:
    """(N, d) -> (N, D) sparse codes: relu(h W + b), keeping values >= the k-th largest of each row (k = sparsity D).

    >>> pattern_separation(np.eye(2), np.array([[1., 2, 3, 4], [4, 3, 2, 1]]), np.zeros(4), 0.25).tolist()
    [[0.0, 0.0, 0.0, 4.0], [4.0, 0.0, 0.0, 0.0]]
    """
    z = np.maximum(np.atleast_2d(h) @ W + b, 0.0)
    k = max(1, int(sparsity * z.shape[1]))
    kth = np.partition(z, -k, axis=1)[:, -k][:, None]          # (N, 1): the k-th largest per row
    return np.where((z >= kth) & (z > 0), z, 0.0)


def pattern_completion(query: np.ndarray, keys: np.ndarray, k: int,
                       importance: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Indices and scores of the k best stored keys: cosine(query, key) (times importance), best first."""
    sims = keys @ query / (np.linalg.norm(keys, axis=1) * np.linalg.norm(query) + 1e-8)   # (M,)
    scores = sims if importance is None else sims * importance
    idx = np.argsort(-scores, kind="stable")[:k]
    return idx, scores[idx]


def _key(ids: np.ndarray) -> str:
    return hashlib.md5(np.asarray(ids, dtype="<i4").tobytes()).hexdigest()


class Hippocampus(NeuroController):
    """The replay selector: per-domain quotas, chosen among the episodes most similar to the new text."""

    name = "hippocampus"
    state_fields = ("rng", "recalls", "similarity")

    def __init__(self, config: HippocampusConfig | None = None):
        self.config = HippocampusConfig() if config is None else config
        if not isinstance(self.config, HippocampusConfig):
            raise TypeError(f"config must be a HippocampusConfig, got {type(self.config).__name__}")
        self.rng = np.random.default_rng(self.config.seed)
        self.W = self.b = None
        self.codes: dict[str, np.ndarray] = {}     # md5 of token ids -> sparse code (D,)
        self.cues: dict[str, np.ndarray] = {}      # the same for cues (a text's chunks recur across steps)
        self._jits: dict[tuple, TinyJit] = {}
        self.recalls, self.similarity = 0, math.nan

    def encode(self, model: Any, chunks: list[np.ndarray], seq_len: int) -> np.ndarray:
        """(N, d) mean hidden state of each chunk over its tokens, in jitted forwards of `encode_rows` rows."""
        rows, out = self.config.encode_rows, []
        key = (id(model), lora.active_adapter(model), seq_len)    # a TinyJit replays one adapter's kernels only
        if key not in self._jits:
            def mean_hidden(tokens: Tensor, mask: Tensor) -> Tensor:
                h = model.hidden_states(tokens).float() * mask.unsqueeze(-1)               # (rows, T, d)
                return (h.sum(1) / mask.sum(1, keepdim=True).maximum(1.0)).realize()       # (rows, d)
            self._jits[key] = TinyJit(mean_hidden)
        for start in range(0, len(chunks), rows):
            tokens = np.zeros((rows, seq_len), dtype=np.int32)             # fixed shape; 0 = padding
            mask = np.zeros((rows, seq_len), dtype=np.float32)
            for r, ids in enumerate(chunks[start:start + rows]):
                ids = np.asarray(ids)[:seq_len]
                tokens[r, :len(ids)], mask[r, :len(ids)] = ids, 1.0
            out.append(self._jits[key](Tensor(tokens), Tensor(mask)).numpy())
        return np.concatenate(out)[:len(chunks)]

    def separate(self, h: np.ndarray) -> np.ndarray:
        if self.W is None:
            self.W, self.b = dentate_projection(h.shape[1], self.config.expansion_factor, self.config.seed)
        return pattern_separation(h, self.W, self.b, self.config.sparsity)

    def store(self, learner: Any) -> int:
        """Give every replay item without a key its sparse code; forget the keys of evicted items."""
        items = learner.replay.experiences
        fresh = [e for e in items if _key(e.input_ids) not in self.codes]
        if fresh:
            codes = self.separate(self.encode(learner.model, [e.input_ids for e in fresh], learner.config.seq_len))
            self.codes.update({_key(e.input_ids): c for e, c in zip(fresh, codes)})
        if len(self.codes) > 2 * len(items):
            alive = {_key(e.input_ids) for e in items}
            self.codes = {k: v for k, v in self.codes.items() if k in alive}
        return len(fresh)

    def select_replay(self, learner: Any, n: int, new: list[np.ndarray] | None = None) -> list | None:
        items = learner.replay.experiences
        if not items:
            return None
        self.store(learner)
        cue_chunks = list(new) if new is not None else [e.input_ids for e in list(learner.replay.recent)[-4:]]
        cue_key = _key(np.concatenate([np.asarray(c).ravel() for c in cue_chunks]))
        if cue_key not in self.cues:
            self.cues = self.cues if len(self.cues) < 256 else {}
            h = self.encode(learner.model, cue_chunks, learner.config.seq_len).mean(0, keepdims=True)
            self.cues[cue_key] = self.separate(h)[0]
        cue = self.cues[cue_key]
        groups: dict[str, list[int]] = {}
        for i, e in enumerate(items):
            groups.setdefault(str(e.domain), []).append(i)
        out, sims = [], []
        for d, quota in domain_quotas({d: len(v) for d, v in groups.items()}, n).items():
            if quota == 0:
                continue
            idx = np.asarray(groups[d])
            keys = np.stack([self.codes[_key(items[i].input_ids)] for i in idx])
            imp = np.array([items[i].importance for i in idx]) if self.config.importance_weighted else None
            best, scores = pattern_completion(cue, keys, max(self.config.recall_pool, quota), imp)
            pick = self.rng.choice(len(best), size=quota, replace=False)
            out.extend(items[i] for i in idx[best[pick]])
            sims.extend(scores[pick])
        self.recalls += len(out)
        self.similarity = float(np.mean(sims)) if sims else math.nan
        return [out[i] for i in self.rng.permutation(len(out))]

    def on_step(self, learner: Any, stats: dict) -> None:
        self.publish(stats)

    def state_dict(self) -> dict[str, Any]:
        """The stored traces (episode codes) and cached cues, as key lists and stacked (N, D) arrays, and the RNG.
        The dentate projection is not saved: it is rebuilt from config.seed."""
        out = super().state_dict()
        for name in ("codes", "cues"):
            table = getattr(self, name)
            out[f"{name}_keys"] = list(table)
            out[name] = np.stack(list(table.values())) if table else np.zeros((0, 0), dtype=np.float32)
        return out

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        for name in ("codes", "cues"):
            keys, rows = list(state[f"{name}_keys"]), np.asarray(state[name])
            if len(keys) != (len(rows) if keys else 0):
                raise ValueError(f"hippocampus state has {len(keys)} {name} keys but {len(rows)} rows")
            setattr(self, name, {str(k): row.copy() for k, row in zip(keys, rows)})

    def readout(self) -> dict[str, float]:
        codes = list(self.codes.values())
        active = float(np.mean([np.count_nonzero(c) / c.size for c in codes])) if codes else math.nan
        return {"episodes": float(len(codes)), "active_fraction": active, "recall_similarity": self.similarity,
                "recalls": float(self.recalls)}
