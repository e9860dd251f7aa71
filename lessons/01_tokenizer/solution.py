"""Lesson 01 reference solution: byte-level BPE from scratch (compare with minimac/bpe.py and minimac/tokenizer.py).

Ids here are minbpe's: the 256 bytes are ids 0-255 and merge k creates id 256 + k. (minimac puts `<|endoftext|>`
at id 0, so its ids are these plus one.)
"""
import re
from collections import Counter
from itertools import pairwise

# The pre-tokeniser of minimac/tokenizer.py (a standard-library `re` version of the Llama-3/Qwen2 pattern).
PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|(?:[^\r\n\w]|_)?[^\W\d_]+|\d| ?(?:[^\s\w]|_)+[\r\n]*"
           r"|\s*[\r\n]+|\s+(?!\S)|\s+")


def get_stats(ids, counts=None):
    """Count adjacent pairs: get_stats([1, 2, 3, 1, 2]) -> {(1, 2): 2, (2, 3): 1, (3, 1): 1}."""
    counts = {} if counts is None else counts
    for pair in pairwise(ids):
        counts[pair] = counts.get(pair, 0) + 1
    return counts


def merge(ids, pair, new_id):
    """Replace each occurrence of `pair`, left to right: merge([1, 2, 3, 1, 2], (1, 2), 4) -> [4, 3, 4]."""
    out, i = [], 0
    while i < len(ids):
        if i + 1 < len(ids) and (ids[i], ids[i + 1]) == pair:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


def best_pair(stats):
    """The most frequent pair; on a tie, the smallest pair of ids: best_pair({(5, 1): 2, (2, 9): 2}) -> (2, 9)."""
    return min(stats, key=lambda pair: (-stats[pair], pair))


def train(text, num_merges):
    """Learn up to `num_merges` merges on the UTF-8 bytes of `text` (no pre-tokenisation): {pair: new id}."""
    ids = list(text.encode("utf-8"))
    merges = {}
    for k in range(num_merges):
        stats = get_stats(ids)
        if not stats:
            break
        pair = best_pair(stats)
        merges[pair] = 256 + k
        ids = merge(ids, pair, 256 + k)
    return merges


def encode(text, merges):
    """Text -> ids: start from the bytes and apply the merges, the earliest-learned (lowest id) pair first."""
    ids = list(text.encode("utf-8"))
    while len(ids) >= 2:
        stats = get_stats(ids)
        pair = min(stats, key=lambda p: merges.get(p, float("inf")))
        if pair not in merges:
            break
        ids = merge(ids, pair, merges[pair])
    return ids


def decode(ids, merges):
    """Ids -> text: expand each id to its bytes, then decode UTF-8 (invalid bytes become U+FFFD)."""
    vocab = {i: bytes([i]) for i in range(256)}
    for (a, b), new_id in sorted(merges.items(), key=lambda item: item[1]):  # parts are always defined first
        vocab[new_id] = vocab[a] + vocab[b]
    return b"".join(vocab[i] for i in ids).decode("utf-8", errors="replace")


def bytes_to_unicode():
    """GPT-2's map from each byte to a printable character: printable bytes stay, the 68 others get chr(256 + n)."""
    printable = [*range(33, 127), *range(161, 173), *range(174, 256)]
    mapping, n = {}, 0
    for b in range(256):
        if b in printable:
            mapping[b] = chr(b)
        else:
            mapping[b] = chr(256 + n)
            n += 1
    return mapping


def train_words(text, num_merges, min_frequency=2):
    """Like train, but on pre-tokens: split with PATTERN, count each word once with its frequency, never merge
    across words, and stop when the best pair occurs fewer than `min_frequency` times."""
    counts = Counter(re.findall(PATTERN, text))
    words = {w: list(w.encode("utf-8")) for w in counts}
    merges = {}
    for k in range(num_merges):
        stats = {}
        for w, freq in counts.items():
            for pair in pairwise(words[w]):
                stats[pair] = stats.get(pair, 0) + freq
        if not stats:
            break
        pair = best_pair(stats)
        if stats[pair] < min_frequency:
            break
        merges[pair] = 256 + k
        words = {w: merge(ids, pair, 256 + k) for w, ids in words.items()}
    return merges
