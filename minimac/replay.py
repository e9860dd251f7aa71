"""Experience replay: a small memory of past training sequences, mixed into new batches to slow forgetting. Lesson 09.

Covers: `Experience` (token ids + importance + domain), `ReplayBuffer` with Avalanche's `mem_size` and three
policies for a full buffer ("reservoir", "importance", "uniform"), de-duplication by hash, importance-weighted
sampling without replacement, per-domain balanced sampling, a window of the most recent items (the seed's streaming
buffer), and an atomic save/load. Everything is host-side numpy: the buffer never touches the device.
Leaves out: labels (minimac shifts the ids once when it builds a batch), diversity sampling, gradient-based
selection (GEM/A-GEM).

    >>> buf = ReplayBuffer(mem_size=2, policy="importance")
    >>> buf.add(Experience([1, 2, 3], importance=1.0)), buf.add(Experience([4, 5], importance=3.0))
    (True, True)
    >>> buf.add(Experience([1, 2, 3])), buf.add(Experience([6], importance=2.0))  # a duplicate, then a keeper
    (False, True)
    >>> sorted(e.importance for e in buf.experiences)
    [2.0, 3.0]
"""
from __future__ import annotations

import hashlib
import json
import os
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from minimac.files import atomic_write

POLICIES = ("reservoir", "importance", "uniform")
UNKNOWN_DOMAIN = "unknown"  # the group of experiences whose domain is None


@dataclass(eq=False)
class Experience:
    """One training sequence. `input_ids` becomes a read-only 1-D int32 array, so its `hash` cannot go stale."""
    input_ids: Any
    importance: float = 1.0
    domain: str | None = None
    metadata: dict = field(default_factory=dict)

    def __post_init__(self):
        ids = np.asarray(self.input_ids)
        if ids.ndim != 1 or ids.size == 0:
            raise ValueError(f"input_ids must be a non-empty 1-D sequence of token ids, got shape {ids.shape}")
        if ids.dtype.kind not in "iu":
            raise TypeError(f"input_ids must hold integer token ids, got dtype {ids.dtype}")
        if ids.min() < 0 or ids.max() >= 2**31:
            raise ValueError(f"token ids must lie in [0, 2**31), got min {ids.min()} max {ids.max()}")
        self.input_ids = ids.astype(np.int32)
        self.input_ids.flags.writeable = False
        self.importance = float(self.importance)
        if not np.isfinite(self.importance) or self.importance < 0:
            raise ValueError(f"importance must be a finite number >= 0, got {self.importance}")

    @property
    def hash(self) -> str:
        """md5 of the little-endian int32 bytes: equal token sequences, equal hash, whatever container held them."""
        return hashlib.md5(self.input_ids.astype("<i4").tobytes()).hexdigest()

    def __len__(self) -> int:
        return len(self.input_ids)

    def __eq__(self, other) -> bool:
        return (isinstance(other, Experience) and np.array_equal(self.input_ids, other.input_ids)
                and (self.importance, self.domain, self.metadata) == (other.importance, other.domain, other.metadata))


def _check_positive(name: str, n: Any) -> None:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n <= 0:
        raise ValueError(f"{name} must be a positive integer, got {n!r}")


def _domain_key(exp: Experience) -> str:
    return UNKNOWN_DOMAIN if exp.domain is None else exp.domain


class ReplayBuffer:
    """Keeps at most `mem_size` experiences. What happens once it is full depends on `policy`:

    - "reservoir" (Vitter's algorithm R): the n-th distinct item is kept with probability mem_size / n and then
      overwrites a uniformly random slot, so at every moment the buffer is a uniform sample of the whole stream.
    - "importance": the new item replaces the least important one (the first minimum) only if it is *strictly* more
      important. With equal importances (the default 1.0) a full buffer therefore rejects every new item.
    - "uniform": every new item is kept and evicts a uniformly random slot. An item survives k later additions with
      probability (1 - 1/mem_size)^k, so memory leans towards recent items (unlike reservoir).

    De-duplication: `add` rejects an item whose token ids are already *stored*. A rejected or evicted item's hash is
    not kept (the seed registered it before deciding, which blocked identical items forever).
    `total_seen` counts distinct items offered: it is the reservoir's n. All randomness comes from one seeded numpy
    Generator, so a run is reproducible from `seed`, and `save`/`load` carry the generator state along.
    `recent` holds the last `recent_window` stored items (default mem_size // 10) for "new + replay" batches.
    """

    def __init__(self, mem_size: int, policy: str = "reservoir", seed: int = 0, recent_window: int | None = None):
        _check_positive("mem_size", mem_size)
        if policy not in POLICIES:
            raise ValueError(f"unknown replay policy {policy!r}; choose one of {', '.join(POLICIES)}")
        self.mem_size, self.policy, self.seed = int(mem_size), policy, seed
        window = max(1, self.mem_size // 10) if recent_window is None else recent_window
        _check_positive("recent_window", window)
        self.recent: deque[Experience] = deque(maxlen=int(window))
        self.rng = np.random.default_rng(seed)
        self.experiences: list[Experience] = []
        self._hashes: dict[str, int] = {}  # hash -> how many stored copies (more than 1 only with allow_duplicates)
        self.total_seen = 0
        self.counts = {"added": 0, "replaced": 0, "rejected": 0, "duplicates": 0, "samples_drawn": 0}

    def __len__(self) -> int:
        return len(self.experiences)

    def _store(self, exp: Experience, slot: int | None) -> None:
        if slot is None:
            self.experiences.append(exp)
        else:
            old = self.experiences[slot].hash
            self._hashes[old] -= 1
            if self._hashes[old] == 0:
                del self._hashes[old]
            self.experiences[slot] = exp
            self.counts["replaced"] += 1
        self._hashes[exp.hash] = self._hashes.get(exp.hash, 0) + 1
        self.recent.append(exp)
        self.counts["added"] += 1

    def add(self, exp: Experience, allow_duplicates: bool = False) -> bool:
        """Offer one experience; return True if it was stored."""
        if not isinstance(exp, Experience):
            raise TypeError(f"add() takes an Experience, got {type(exp).__name__}; wrap token ids as Experience(ids)")
        if not allow_duplicates and exp.hash in self._hashes:
            self.counts["duplicates"] += 1
            return False
        self.total_seen += 1
        slot = None
        if len(self.experiences) >= self.mem_size:
            if self.policy == "reservoir":
                slot = int(self.rng.integers(self.total_seen))  # keep iff slot < mem_size: probability m/n
                slot = slot if slot < self.mem_size else None
            elif self.policy == "importance":
                imp = np.array([e.importance for e in self.experiences])
                slot = int(imp.argmin()) if exp.importance > imp.min() else None
            else:
                slot = int(self.rng.integers(self.mem_size))
            if slot is None:
                self.counts["rejected"] += 1
                return False
        self._store(exp, slot)
        return True

    def add_many(self, exps: Iterable[Experience], auto_importance: bool = False) -> int:
        """Offer several experiences in order; return how many were stored.

        With `auto_importance` an item whose metadata has a "loss" gets importance min(loss, 10), as in the seed.
        """
        stored = 0
        for e in exps:
            if auto_importance and "loss" in e.metadata:
                e = Experience(e.input_ids, min(float(e.metadata["loss"]), 10.0), e.domain, e.metadata)
            stored += self.add(e)
        return stored

    def _check_n(self, n: int) -> None:
        _check_positive("number of samples", n)
        if not self.experiences:
            raise ValueError("cannot sample from an empty replay buffer: add experiences first")

    def sample(self, n: int, weighted: bool = True) -> list[Experience]:
        """Draw min(n, len) distinct experiences, with probability proportional to importance when `weighted`.

        Zero-importance items are only drawn once every positive one has been (the seed crashed on an all-zero sum).
        """
        self._check_n(n)
        k = min(int(n), len(self))
        imp = np.array([e.importance for e in self.experiences], dtype=np.float64)
        if not weighted:
            idx = self.rng.choice(len(self), size=k, replace=False)
        else:
            pos, zero = np.flatnonzero(imp > 0), np.flatnonzero(imp == 0)
            if len(pos) >= k:
                idx = self.rng.choice(pos, size=k, replace=False, p=imp[pos] / imp[pos].sum())
            else:
                idx = np.concatenate([pos, self.rng.choice(zero, size=k - len(pos), replace=False)])
        self.counts["samples_drawn"] += k
        return [self.experiences[i] for i in idx]

    def sample_by_domain(self, n: int, domains: Sequence[str] | None = None) -> list[Experience]:
        """Draw about n / len(domains) experiences uniformly from each domain (all present domains by default).

        A domain with too few items gives all it has, and the others make up the difference; the result is shuffled.
        Experiences with domain None form the group "unknown".
        """
        self._check_n(n)
        groups: dict[str, list[int]] = {}
        for i, e in enumerate(self.experiences):
            groups.setdefault(_domain_key(e), []).append(i)
        domains = sorted(groups) if domains is None else list(domains)
        missing = [d for d in domains if d not in groups]
        if missing or not domains:
            raise ValueError(f"no experiences for domain(s) {missing}; the buffer holds {sorted(groups)}")
        want = {d: 0 for d in domains}
        left = min(int(n), sum(len(groups[d]) for d in domains))
        while left > 0:  # hand out one item at a time, round robin over domains that still have some
            for d in domains:
                if left > 0 and want[d] < len(groups[d]):
                    want[d], left = want[d] + 1, left - 1
        idx = np.concatenate([self.rng.choice(groups[d], size=want[d], replace=False) for d in domains])
        self.rng.shuffle(idx)
        self.counts["samples_drawn"] += len(idx)
        return [self.experiences[i] for i in idx]

    def sample_recent(self, n: int) -> list[Experience]:
        """Up to n distinct items drawn uniformly from the recent window (which may hold items since evicted)."""
        _check_positive("number of samples", n)
        if not self.recent:
            raise ValueError("cannot sample recent experiences: nothing has been stored yet")
        idx = self.rng.choice(len(self.recent), size=min(int(n), len(self.recent)), replace=False)
        return [self.recent[i] for i in idx]

    def update_importance(self, index: int, importance: float) -> None:
        """Set the importance of the stored item at `index` (e.g. to its latest loss)."""
        old = self.experiences[index]
        self.experiences[index] = Experience(old.input_ids, importance, old.domain, old.metadata)

    def domain_counts(self) -> dict[str, int]:
        """{domain: stored items}; a None domain counts as "unknown"."""
        out: dict[str, int] = {}
        for e in self.experiences:
            out[_domain_key(e)] = out.get(_domain_key(e), 0) + 1
        return out

    def stats(self) -> dict[str, Any]:
        imp = [e.importance for e in self.experiences]
        return {"size": len(self), "mem_size": self.mem_size, "policy": self.policy, "total_seen": self.total_seen,
                **self.counts, "mean_importance": float(np.mean(imp)) if imp else 0.0, "domains": self.domain_counts()}

    def clear(self) -> None:
        """Forget every item; the reservoir count restarts too, the lifetime counters in `stats()` do not."""
        self.experiences, self._hashes, self.total_seen = [], {}, 0
        self.recent.clear()

    def state_dict(self) -> dict[str, np.ndarray]:
        """The whole buffer as three arrays: every item's token ids concatenated (compact), their lengths, and
        everything else (settings, counters, importances, domains, the RNG state, the recent window) as one JSON
        string. `from_state_dict` rebuilds it; `save` writes these arrays as an .npz."""
        exps = self.experiences
        state = {"mem_size": self.mem_size, "policy": self.policy, "seed": self.seed, "total_seen": self.total_seen,
                 "counts": self.counts, "rng": self.rng.bit_generator.state, "recent_window": self.recent.maxlen,
                 "items": [[e.importance, e.domain, e.metadata] for e in exps],
                 "recent": [[e.input_ids.tolist(), e.importance, e.domain, e.metadata] for e in self.recent]}
        try:
            meta = json.dumps(state)
        except TypeError as err:
            raise TypeError(f"cannot save replay buffer: experience metadata must be JSON-serialisable ({err})") from err
        return {"ids": np.concatenate([e.input_ids for e in exps]) if exps else np.zeros(0, np.int32),
                "lengths": np.array([len(e) for e in exps], dtype=np.int64), "meta": np.array(meta)}

    @classmethod
    def from_state_dict(cls, arrays: dict[str, np.ndarray]) -> ReplayBuffer:
        """The buffer `state_dict()` described; sampling continues exactly where that buffer would have."""
        ids, lengths, state = arrays["ids"], arrays["lengths"], json.loads(str(arrays["meta"]))
        buf = cls(state["mem_size"], state["policy"], state["seed"], state["recent_window"])
        chunks = np.split(ids, np.cumsum(lengths)[:-1]) if len(lengths) else []
        for chunk, (imp, dom, meta) in zip(chunks, state["items"], strict=True):
            buf._store(Experience(chunk, imp, dom, meta), None)
        buf.total_seen, buf.counts = state["total_seen"], state["counts"]
        buf.rng.bit_generator.state = state["rng"]
        buf.recent.clear()
        buf.recent.extend(Experience(*r) for r in state["recent"])
        return buf

    def save(self, path: str | os.PathLike) -> None:
        """Write the buffer's `state_dict()` to `path` (an .npz file) atomically (minimac/files.py)."""
        arrays = self.state_dict()
        def write(tmp: str) -> None:
            with open(tmp, "wb") as f:    # a file object: np.savez would add ".npz" to a name
                np.savez(f, **arrays)
        atomic_write(os.fspath(path), write)

    @classmethod
    def load(cls, path: str | os.PathLike) -> ReplayBuffer:
        """Read a buffer written by `save`; sampling continues exactly where the saved buffer would have."""
        path = os.fspath(path)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"no replay buffer file at {path}")
        try:
            with np.load(path, allow_pickle=False) as z:
                return cls.from_state_dict({k: z[k] for k in ("ids", "lengths", "meta")})
        except Exception as err:
            raise ValueError(f"{path} is not a readable minimac replay buffer file ({type(err).__name__}: {err})") \
                from err

