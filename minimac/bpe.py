"""Byte-pair encoding on lists of integer ids: counting pairs, merging, incremental training. Lesson 01.

These are the pure functions under `minimac/tokenizer.py`: no text, no regex, no files. A "word" is a sequence of
token ids (a pre-token's UTF-8 bytes to begin with). Training fuses the most frequent adjacent pair into a new id,
again and again; encoding replays those merges, lowest rank first. `bytes_to_unicode` is GPT-2's printable alphabet
for showing and storing byte tokens as text.

    get_stats([1, 2, 3, 1, 2])        -> {(1, 2): 2, (2, 3): 1, (3, 1): 1}
    merge([1, 2, 3, 1, 2], (1, 2), 9) -> [9, 3, 9]

Not covered here: normalisation, pre-tokenisation, special tokens and saving (see tokenizer.py).
"""
from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Mapping, Sequence
from itertools import pairwise

Pair = tuple[int, int]


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's byte -> printable character map, so any token's bytes can be written as readable text.

    Printable bytes (33-126, 161-172, 174-255) map to themselves; the other 68 bytes (controls, space, 127-160, 173)
    map to chr(256), chr(257), ... in byte order. So `bytes_to_unicode()[ord("a")] == "a"`, the space 32 maps to
    "Ġ" (U+0120) and byte 0 to "Ā" (U+0100). It is a bijection: invert it to read the bytes back.
    """
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    mapping, n = {b: chr(b) for b in printable}, 0
    for b in range(256):
        if b not in mapping:
            mapping[b] = chr(256 + n)
            n += 1
    return dict(sorted(mapping.items()))


def get_stats(ids: Sequence[int], counts: dict[Pair, int] | None = None, weight: int = 1) -> dict[Pair, int]:
    """Count adjacent pairs, adding `weight` per occurrence to `counts` (a new dict when None).

    get_stats([1, 2, 3, 1, 2]) -> {(1, 2): 2, (2, 3): 1, (3, 1): 1}
    """
    counts = {} if counts is None else counts
    for pair in pairwise(ids):
        counts[pair] = counts.get(pair, 0) + weight
    return counts


def merge(ids: Sequence[int], pair: Pair, new_id: int) -> list[int]:
    """Replace every occurrence of `pair` by `new_id`, left to right, without overlaps.

    merge([1, 2, 3, 1, 2], (1, 2), 9) -> [9, 3, 9];  merge([5, 5, 5], (5, 5), 9) -> [9, 5]
    """
    out, i, n = [], 0, len(ids)
    a, b = pair
    while i < n:
        if i < n - 1 and ids[i] == a and ids[i + 1] == b:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


def train_bpe(word_counts: Mapping[tuple[int, ...], int], num_merges: int, first_id: int, min_frequency: int = 2,
              on_merge: Callable[[int], None] | None = None) -> list[Pair]:
    """Learn up to `num_merges` merges from words with their frequencies; merge k creates id `first_id + k`.

    Each step takes the pair with the highest count (weighted by word frequency); ties go to the smallest pair of ids
    (`(-count, pair)` is the heap key), so the result never depends on dict or set order. It stops early when no pair
    is left or the best count is below `min_frequency`.

    Incremental, not a full recount per merge: `counts` holds every pair's count and `where` the words that contain
    it. A merge rewrites only the words listed for its pair and adds the difference in their pair counts. The heap
    may hold stale (old count) entries: every change pushes the new count, and a popped entry whose count no longer
    matches is skipped. Cost per merge ~ total length of the words that contain the pair, instead of the corpus.

    train_bpe({(1, 2, 3): 2, (1, 2): 1}, 2, first_id=10) -> [(1, 2), (10, 3)]
    """
    words = [list(w) for w in word_counts]
    freqs = list(word_counts.values())
    counts: dict[Pair, int] = {}
    where: dict[Pair, set[int]] = {}
    for i, (word, freq) in enumerate(zip(words, freqs)):
        get_stats(word, counts, freq)
        for pair in pairwise(word):
            where.setdefault(pair, set()).add(i)
    heap = [(-count, pair) for pair, count in counts.items()]
    heapq.heapify(heap)

    merges: list[Pair] = []
    while len(merges) < num_merges and heap:
        neg_count, pair = heapq.heappop(heap)
        if counts.get(pair) != -neg_count:
            continue  # stale: this pair's count changed after the entry was pushed
        if -neg_count < min_frequency:
            break
        new_id = first_id + len(merges)
        merges.append(pair)
        delta: dict[Pair, int] = {}
        for i in where.pop(pair):
            old = words[i]
            new = merge(old, pair, new_id)
            if len(new) == len(old):
                continue  # the index is lazy: this word lost the pair to an earlier merge
            get_stats(old, delta, -freqs[i])
            get_stats(new, delta, freqs[i])
            for p in pairwise(new):
                if new_id in p:  # only pairs with the new id are new to this word
                    where.setdefault(p, set()).add(i)
            words[i] = new
        for p, d in delta.items():
            if d:
                count = counts.get(p, 0) + d
                if count:
                    counts[p] = count
                    heapq.heappush(heap, (-count, p))
                else:
                    del counts[p]
        if on_merge is not None:
            on_merge(len(merges))
    return merges


def encode_word(ids: Iterable[int], merges: Mapping[Pair, int]) -> list[int]:
    """Apply learned merges to one word; `merges` maps pair -> new id, and new ids grow with merge rank.

    Each step fuses the leftmost occurrence of the lowest-rank pair. Pairs that contain the new id always rank
    later, so this replays training exactly: a word encodes to the tokens it was split into at the end of training.
    encode_word([1, 2, 3], {(1, 2): 10, (10, 3): 11}) -> [11]
    """
    ids, unknown = list(ids), float("inf")
    while len(ids) >= 2:
        ranks = [merges.get(pair, unknown) for pair in pairwise(ids)]
        best = min(ranks)
        if best == unknown:
            break
        i = ranks.index(best)
        ids[i:i + 2] = [best]  # the new id is the rank order, so it doubles as the rank
    return ids
