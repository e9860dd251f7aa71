"""Tests for lesson 01. `pytest lessons/01_tokenizer` checks exercise.py; MINIMAC_SOLUTION=1 checks solution.py.

Each stage compares your function with hand-worked examples and with minimac's own (minimac/bpe.py,
minimac/tokenizer.py). Run one stage at a time with -k, e.g. `pytest lessons/01_tokenizer -k stage1`.
"""
import random
import re
from collections import Counter

from minimac import bpe
from minimac.tokenizer import Tokenizer

TEXT = ("Beautiful is better than ugly. Explicit is better than implicit. Simple is better than complex. "
        "Complex is better than complicated. Flat is better than nested. Sparse is better than dense. "
        "Readability counts. 2 + 2 = 4, and 10 * 10 = 100!\n") * 2
UNICODE = "naïve café, 東京, 🐍🐍 and ☕"


def test_stage1_get_stats(ex):
    assert ex.get_stats([1, 2, 3, 1, 2]) == {(1, 2): 2, (2, 3): 1, (3, 1): 1}
    assert ex.get_stats([7]) == {} and ex.get_stats([]) == {}
    counts = {(1, 2): 5}
    assert ex.get_stats([1, 2], counts) is counts and counts == {(1, 2): 6}
    ids = list(TEXT.encode())
    assert ex.get_stats(ids) == bpe.get_stats(ids)


def test_stage1_merge(ex):
    assert ex.merge([1, 2, 3, 1, 2], (1, 2), 4) == [4, 3, 4]
    assert ex.merge([5, 5, 5], (5, 5), 9) == [9, 5]  # left to right, no overlaps
    assert ex.merge([5, 5, 5, 5], (5, 5), 9) == [9, 9]
    assert ex.merge([1, 2], (2, 1), 7) == [1, 2] and ex.merge([], (1, 2), 7) == []
    rng = random.Random(0)
    for _ in range(50):
        ids = rng.choices(range(4), k=30)
        assert ex.merge(ids, (1, 2), 99) == bpe.merge(ids, (1, 2), 99)


def test_stage2_best_pair(ex):
    assert ex.best_pair({(5, 1): 2, (2, 9): 2, (0, 0): 1}) == (2, 9)
    assert ex.best_pair({(1, 1): 1, (0, 3): 3}) == (0, 3)


def test_stage2_train(ex):
    assert ex.train("aaabdaaabac", 3) == {(97, 97): 256, (97, 98): 257, (256, 257): 258}  # aa, ab, aa+ab
    assert ex.train("a", 5) == {}  # no pair to merge
    merges = ex.train(TEXT, 40)
    expected = bpe.train_bpe({tuple(TEXT.encode()): 1}, 40, first_id=256, min_frequency=1)
    assert list(merges) == expected and list(merges.values()) == list(range(256, 296))


def test_stage3_encode_decode_round_trip(ex):
    wiki = {(97, 97): 256, (97, 98): 257, (256, 257): 258}
    assert ex.encode("aaabdaaabac", wiki) == [258, 100, 258, 97, 99]
    assert ex.decode([258, 100, 258, 97, 99], wiki) == "aaabdaaabac"
    merges = ex.train(TEXT, 40)
    ids = ex.encode(TEXT, merges)
    assert len(ids) < len(TEXT.encode()) / 2
    assert ids == bpe.encode_word(TEXT.encode(), merges)
    for text in ["", "a", TEXT, UNICODE, "better than nothing"]:
        assert ex.decode(ex.encode(text, merges), merges) == text
    assert ex.decode([0xF0, 0x9F], merges) == "\ufffd"  # half an emoji is not valid UTF-8


def test_stage4_bytes_to_unicode(ex):
    mapping = ex.bytes_to_unicode()
    assert mapping == bpe.bytes_to_unicode()
    assert mapping[32] == "Ġ" and mapping[ord("a")] == "a" and len(set(mapping.values())) == 256


def test_stage5_train_words_matches_minimac(ex):
    merges = ex.train_words(TEXT, 60)
    # minimac's ids are ours + 1 (its <|endoftext|> takes id 0), so shift back before comparing
    tok = Tokenizer(normalization=None).train(TEXT, vocab_size=257 + 60, verbose=False)
    assert list(merges) == [(a - 1, b - 1) for a, b in tok.merges]
    counts = Counter(re.findall(ex.PATTERN, TEXT))
    assert list(ex.train_words(TEXT, 60, min_frequency=1)) == bpe.train_bpe(
        {tuple(w.encode()): c for w, c in counts.items()}, 60, first_id=256, min_frequency=1)
