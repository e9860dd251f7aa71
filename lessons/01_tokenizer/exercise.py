"""Lesson 01 exercise: byte-level BPE from scratch. Fill in each function, then run `pytest lessons/01_tokenizer`.

Ids here are minbpe's: the 256 bytes are ids 0-255 and merge k creates id 256 + k. (minimac puts `<|endoftext|>`
at id 0, so its ids are these plus one.) README.md gives the stages; peek at minimac/bpe.py if stuck.
"""
import re  # noqa: F401  (you will need it in train_words)
from collections import Counter  # noqa: F401

# The pre-tokeniser of minimac/tokenizer.py (a standard-library `re` version of the Llama-3/Qwen2 pattern).
PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|(?:[^\r\n\w]|_)?[^\W\d_]+|\d| ?(?:[^\s\w]|_)+[\r\n]*"
           r"|\s*[\r\n]+|\s+(?!\S)|\s+")


def get_stats(ids, counts=None):
    """Count adjacent pairs into `counts` (a new dict when None) and return it.

    get_stats([1, 2, 3, 1, 2]) -> {(1, 2): 2, (2, 3): 1, (3, 1): 1}
    """
    raise NotImplementedError("Stage 1: get_stats")


def merge(ids, pair, new_id):
    """Return a new list with every occurrence of `pair` replaced by `new_id`, scanning left to right.

    merge([1, 2, 3, 1, 2], (1, 2), 4) -> [4, 3, 4];  merge([5, 5, 5], (5, 5), 9) -> [9, 5]
    """
    raise NotImplementedError("Stage 1: merge")


def best_pair(stats):
    """The pair with the highest count; on a tie, the smallest pair (compare the tuples).

    best_pair({(5, 1): 2, (2, 9): 2, (0, 0): 1}) -> (2, 9)
    """
    raise NotImplementedError("Stage 2: best_pair")


def train(text, num_merges):
    """Learn up to `num_merges` merges on the UTF-8 bytes of `text` (no pre-tokenisation yet).

    Returns {pair: new_id} in the order learned: merge k is the best pair at step k and gets id 256 + k.
    Stop early when no pair is left. Wikipedia's example, with "a" = 97, "b" = 98:
    train("aaabdaaabac", 3) -> {(97, 97): 256, (97, 98): 257, (256, 257): 258}   (aa, ab, then aa+ab)
    """
    raise NotImplementedError("Stage 2: train")


def encode(text, merges):
    """Text -> ids: start from the UTF-8 bytes; repeatedly merge the pair that was learned first (lowest new id)
    until no pair of the sequence is in `merges`. With the merges above: encode("aaabdaaabac", merges) ->
    [258, 100, 258, 97, 99]
    """
    raise NotImplementedError("Stage 3: encode")


def decode(ids, merges):
    """Ids -> text: build id -> bytes (bytes for 0-255, then each merge is the bytes of its pair joined), join the
    bytes of `ids` and decode them as UTF-8 with errors="replace". decode([258, 100, 258, 97, 99], ...) -> "aaabdaaabac"
    """
    raise NotImplementedError("Stage 3: decode")


def bytes_to_unicode():
    """GPT-2's byte -> printable character map: bytes 33-126, 161-172 and 174-255 map to chr(b); the other 68 bytes,
    in increasing order, map to chr(256), chr(257), ... So the space (32) becomes "Ġ" (U+0120).
    """
    raise NotImplementedError("Stage 4: bytes_to_unicode")


def train_words(text, num_merges, min_frequency=2):
    """Like train, but on pre-tokens: split `text` with re.findall(PATTERN, text), count each distinct word once
    with its frequency (Counter), count pairs weighted by frequency, never merge across words, and stop when the
    best pair occurs fewer than `min_frequency` times. Returns {pair: new_id} like train.
    """
    raise NotImplementedError("Stage 5: train_words")
