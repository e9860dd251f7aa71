"""Tests for minimac/tokenizer.py and minimac/bpe.py: byte-level BPE (lesson 01)."""
import doctest
import json
import random
import re
import unicodedata
from collections import Counter
from pathlib import Path

import pytest

from minimac import bpe, tokenizer
from minimac.tokenizer import PATTERN, Tokenizer

PARAGRAPH = (
    "The quick brown fox jumps over the lazy dog. The dog sleeps; the fox runs on and on.\n"
    "In 2025 the fox ran 3.14 km, then 42 more. Don't stop, it's fine -- they'll see!\n\n"
    "    def the_fox(x): return x + 1  # code, too\n"
) * 3
SAMPLES = {
    "empty": "",
    "ascii": "Hello, world! It's 2025.\n\n  ok\t\tdone  ",
    "emoji": "Snakes 🐍🐍 and a family 👨‍👩‍👧 and flags 🇫🇷!",
    "cjk": "机器学习很有趣。東京は日本の首都です。한국어도 됩니다.",
    "combining_nfc": "café naïve Ångström",
    "code": "def f(x: int) -> int:\n\treturn x**2 + 1_000  # comment\r\n",
    "special_text": "a <|endoftext|> b <|endoftext",
    "controls": "\x00\x01\x7f\x1c nul and del \u00ad soft hyphen \ufeff bom",
}


@pytest.fixture(scope="module")
def tok():
    return Tokenizer().train(PARAGRAPH, vocab_size=340, verbose=False)


def naive_bpe(word_counts: dict, num_merges: int, first_id: int, min_frequency: int):
    """Reference: recount every pair over every word at every merge (the seed's algorithm, our tie rule)."""
    splits = {w: list(w) for w in word_counts}
    merges = []
    for k in range(num_merges):
        stats = Counter()
        for w, freq in word_counts.items():
            for pair in zip(splits[w], splits[w][1:]):
                stats[pair] += freq
        if not stats:
            break
        best = min(stats, key=lambda p: (-stats[p], p))  # highest count, then smallest pair of ids
        if stats[best] < min_frequency:
            break
        merges.append(best)
        for w, ids in splits.items():
            out, i = [], 0
            while i < len(ids):
                if i + 1 < len(ids) and (ids[i], ids[i + 1]) == best:
                    out.append(first_id + k)
                    i += 2
                else:
                    out.append(ids[i])
                    i += 1
            splits[w] = out
    return merges, splits


def word_counts_of(text: str) -> dict:
    return {tuple(b + 1 for b in w.encode()): c for w, c in Counter(re.findall(PATTERN, text)).items()}


# ---- byte alphabet, pre-tokeniser, id layout -------------------------------------------------------------------------
def test_bytes_to_unicode_is_gpt2_bijection():
    m = bpe.bytes_to_unicode()
    assert sorted(m) == list(range(256)) and len(set(m.values())) == 256
    assert all(m[b] == chr(b) for b in [*range(33, 127), *range(161, 173), *range(174, 256)])
    assert m[ord(" ")] == "Ġ" and m[0] == "Ā" and m[ord("\n")] == "Ċ"
    moved = [b for b in range(256) if m[b] != chr(b)]
    assert len(moved) == 68 and [m[b] for b in moved] == [chr(256 + i) for i in range(68)]


def test_pretokenizer_matches_seed_example():
    assert re.findall(PATTERN, "Hello world!! It's 2025, x=3.14\n\n  ok") == [
        "Hello", " world", "!!", " It", "'s", " ", "2", "0", "2", "5", ",", " x", "=", "3", ".", "1", "4", "\n\n",
        " ", " ok"]


def test_pretokenizer_covers_every_character():
    rng = random.Random(0)
    for _ in range(200):
        s = "".join(chr(rng.choice([rng.randrange(0x20, 0x7f), rng.randrange(0, 0x3000), rng.randrange(0x1f300, 0x1f6ff)]))
                    for _ in range(rng.randrange(0, 40)))
        s = _SURROGATES.sub("", s)
        assert "".join(re.findall(PATTERN, s)) == s


_SURROGATES = re.compile("[\ud800-\udfff]")


def test_pretokenizer_agrees_with_regex_package_where_documented():
    regex = pytest.importorskip("regex")
    seed = regex.compile(r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                         r"|\s*[\r\n]+|\s+(?!\S)|\s+")
    alphabet = "aZé ßΩж机ア한\u0301'_-.,!?0123456789٣\n\r\t  🐍\u00a0sStTdDmMlLrReEvV"
    rng = random.Random(1)
    for text in [*SAMPLES.values(), PARAGRAPH] + ["".join(rng.choices(alphabet, k=60)) for _ in range(300)]:
        text = text.replace("\x1c", "")  # documented difference: re counts \x1c-\x1f as whitespace
        assert re.findall(PATTERN, text) == seed.findall(text), text
    # documented difference: non-decimal numbers such as ² are letters for `re`, numbers for `regex`
    assert re.findall(PATTERN, "x²") == ["x²"] and seed.findall("x²") == ["x", "²"]


def test_fresh_tokenizer_is_a_257_id_byte_tokenizer():
    t = Tokenizer()
    assert t.vocab_size == 257 and t.eot_id == t.pad_id == t.eos_id == 0 and t.merges == {}
    assert t.encode("A!") == [ord("A") + 1, ord("!") + 1]
    assert t.encode("é") == [b + 1 for b in "é".encode()]
    assert t.vocab[0] == "<|endoftext|>" and t.vocab[1] == "Ā" and t.vocab[33] == "Ġ"
    assert t.decode(t.encode(SAMPLES["emoji"])) == SAMPLES["emoji"]


def test_merged_ids_follow_bytes_in_merge_order(tok):
    assert list(tok.merges.values()) == list(range(257, tok.vocab_size))
    for (a, b), new in tok.merges.items():
        assert a < new and b < new and tok.token_bytes(new) == tok.token_bytes(a) + tok.token_bytes(b)


# ---- round trips -------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", SAMPLES)
def test_round_trip_samples(tok, name):
    text = SAMPLES[name]
    assert tok.decode(tok.encode(text)) == text
    assert tok.decode(tok.encode(text, allowed_special="all")) == text


def test_encoding_compresses_training_like_text(tok):
    assert len(tok.encode("the fox jumps over the dog")) < len("the fox jumps over the dog") / 2


def test_round_trip_random_unicode_without_normalization():
    t = Tokenizer(normalization=None).train(PARAGRAPH, vocab_size=300, verbose=False)
    rng = random.Random(1234)
    for _ in range(300):
        s = "".join(chr(rng.randrange(0, 0x110000)) for _ in range(rng.randrange(0, 30)))
        s = _SURROGATES.sub("", s)
        assert t.decode(t.encode(s)) == s


def test_default_is_lossless_and_nfc_is_an_option(tok):
    decomposed = "cafe\u0301 A\u030a"  # e + combining acute, A + combining ring: not NFC
    assert tok.normalization is None and tok.decode(tok.encode(decomposed)) == decomposed
    assert tok.decode(tok.encode("e\u0301")) == "e\u0301"   # not "\u00e9"
    nfc = Tokenizer(normalization="NFC").train(PARAGRAPH, vocab_size=300, verbose=False)
    assert nfc.decode(nfc.encode(decomposed)) == unicodedata.normalize("NFC", decomposed) == "café Å"
    rng = random.Random(7)
    for _ in range(100):
        s = _SURROGATES.sub("", "".join(chr(rng.randrange(0, 0x3000)) for _ in range(20)))
        assert nfc.decode(nfc.encode(s)) == unicodedata.normalize("NFC", s)


def test_mixed_script_strings_round_trip_exactly(tok):
    """Latin with combining marks, Greek, Cyrillic, Hebrew, Arabic, Devanagari, Hangul jamo, CJK, emoji: 307
    strings; with NFC (the old default) some of them came back changed."""
    blocks = [(0x41, 0x17F), (0x300, 0x36F), (0x370, 0x3FF), (0x400, 0x4FF), (0x5D0, 0x5EA), (0x600, 0x6FF),
              (0x900, 0x97F), (0x1100, 0x11FF), (0xAC00, 0xAD00), (0x4E00, 0x4F00), (0x1F300, 0x1F64F), (0x20, 0x7E)]
    rng = random.Random(307)
    texts = ["".join(chr(rng.randrange(*rng.choice(blocks))) for _ in range(rng.randrange(1, 25)))
             for _ in range(307)]
    assert sum(unicodedata.normalize("NFC", s) != s for s in texts) > 10   # NFC would have changed these
    assert all(tok.decode(tok.encode(s)) == s for s in texts)


def test_old_nfc_tokenizer_files_load_as_nfc(tmp_path):
    Tokenizer(normalization="NFC").train(PARAGRAPH, vocab_size=280, verbose=False).save(tmp_path / "old")
    assert json.loads((tmp_path / "old" / "config.json").read_text())["normalization"] == "NFC"
    old = Tokenizer.load(tmp_path / "old")
    assert old.normalization == "NFC" and old.decode(old.encode("e\u0301")) == "\u00e9"


def test_lone_surrogates_raise_a_clear_error(tok):
    with pytest.raises(ValueError, match=r"lone surrogate U\+D800 at index 3"):
        tok.encode("abc\ud800def")
    with pytest.raises(ValueError, match="lone surrogate U\\+DFFF"):
        tok.encode_batch(["ok", "\udfff"])


def test_decode_replaces_invalid_utf8_and_skips_specials(tok):
    snake = tok.encode("🐍")
    assert tok.decode(snake[:2]) == "\ufffd" and tok.decode(snake) == "🐍"
    ids = tok.encode("hi<|endoftext|>there", allowed_special="all")
    assert tok.decode(ids) == "hi<|endoftext|>there"
    assert tok.decode(ids, skip_special_tokens=True) == "hithere"


# ---- special tokens --------------------------------------------------------------------------------------------------
def test_allowed_special(tok):
    text = "x<|endoftext|>y"
    assert 0 not in tok.encode(text)  # default "none": plain text
    assert tok.encode(text, allowed_special="all") == tok.encode("x") + [0] + tok.encode("y")
    assert tok.encode(text, allowed_special={"<|endoftext|>"}) == tok.encode(text, allowed_special="all")
    assert tok.encode(text, allowed_special=set()) == tok.encode(text)
    assert tok.encode("x", add_eot=True) == tok.encode("x") + [tok.eot_id]


def test_several_special_tokens_and_disallowed_ones_are_plain_text():
    t = Tokenizer(special_tokens=["<|endoftext|>", "<|pad|>", "<|pad|>x"])
    assert t.vocab_size == 259 and t.encode("a") == [ord("a") + 3]
    assert t.encode("<|pad|>x<|pad|>", allowed_special="all") == [2, 1]  # longest special wins
    ids = t.encode("<|pad|><|endoftext|>", allowed_special={"<|endoftext|>"})
    assert ids[-1] == 0 and 1 not in ids and t.decode(ids) == "<|pad|><|endoftext|>"


def test_special_text_in_training_data_is_never_merged():
    t = Tokenizer().train(["<|endoftext|>ab<|endoftext|>ab<|endoftext|>"] * 5, vocab_size=300, verbose=False)
    assert [t.token_bytes(i) for i in t.merges.values()] == [b"ab"]


# ---- training --------------------------------------------------------------------------------------------------------
def test_training_is_deterministic(tok):
    again = Tokenizer().train(PARAGRAPH, vocab_size=340, verbose=False)
    assert list(again.merges) == list(tok.merges) and again.encode(PARAGRAPH) == tok.encode(PARAGRAPH)


@pytest.mark.parametrize("seed", range(6))
def test_incremental_training_equals_full_recount(seed):
    rng = random.Random(seed)
    # A small alphabet makes many equal counts, so the tie rule is exercised, not just the counting.
    text = PARAGRAPH if seed == 0 else " ".join("".join(rng.choices("aab c", k=rng.randrange(1, 8))) for _ in range(300))
    counts = word_counts_of(text)
    for min_frequency in (1, 2, 5):
        expected, _ = naive_bpe(counts, 120, 257, min_frequency)
        assert bpe.train_bpe(counts, 120, 257, min_frequency) == expected
    t = Tokenizer(normalization=None).train(text, vocab_size=257 + 120, min_frequency=2, verbose=False)
    assert list(t.merges) == naive_bpe(counts, 120, 257, 2)[0]


def test_encoding_reproduces_training_segmentation(tok):
    merges, splits = naive_bpe(word_counts_of(PARAGRAPH), tok.vocab_size - 257, 257, 2)
    assert merges == list(tok.merges)
    for word, ids in splits.items():
        assert list(tok.encode(bytes(b - 1 for b in word).decode())) == ids


def test_min_frequency_stops_early():
    t = Tokenizer().train("abcd abcd xyz", vocab_size=1000, min_frequency=2, verbose=False)
    assert t.vocab_size == 257 + 3  # ab, abc, abcd (each seen twice); nothing in "xyz" repeats
    assert Tokenizer().train("abcd abcd xyz", vocab_size=1000, min_frequency=3, verbose=False).vocab_size == 257


def test_vocab_size_at_the_minimum_learns_nothing():
    assert Tokenizer().train(PARAGRAPH, vocab_size=257, verbose=False).merges == {}


def test_train_accepts_files_generators_and_retrains_clean(tmp_path):
    files = []
    for i in range(2):
        files.append(tmp_path / f"part{i}.txt")
        files[-1].write_bytes(b"\xef\xbb\xbf" + PARAGRAPH.replace("\n", "\r\n").encode())  # BOM and CRLF
    from_files = Tokenizer().train(files, vocab_size=320, verbose=False)
    from_texts = Tokenizer().train((PARAGRAPH for _ in range(2)), vocab_size=320, verbose=False)
    assert from_files.merges == from_texts.merges
    from_files.train("zzzz zzzz", vocab_size=300, verbose=False)
    assert [from_files.token_bytes(i) for i in from_files.merges.values()] == [b"zz", b"zzzz"]


def test_train_shows_a_progress_bar(capsys):
    Tokenizer().train(PARAGRAPH, vocab_size=270, verbose=True)
    assert "merging" in capsys.readouterr().out


def test_cache_is_a_bounded_lru(tok):
    tok.encode("fresh words here")
    before = tok._encode_word.cache_info()
    tok.encode("fresh words here")
    after = tok._encode_word.cache_info()
    assert after.maxsize == 50_000 and after.hits > before.hits and after.misses == before.misses


# ---- batches ---------------------------------------------------------------------------------------------------------
def test_encode_batch_padding_masks_and_offsets(tok):
    texts = ["the fox", "Snakes 🐍 on the dog", ""]
    b = tok.encode_batch(texts, padding=True)
    n = [len(tok.encode(t)) for t in texts]
    assert [len(row) for row in b.input_ids] == [max(n)] * 3
    for ids, mask, offs, t, k in zip(b.input_ids, b.attention_mask, b.offsets, texts, n):
        assert ids[:k] == tok.encode(t) and ids[k:] == [tok.pad_id] * (max(n) - k)
        assert mask == [1] * k + [0] * (max(n) - k) and offs[k:] == [(0, 0)] * (max(n) - k)
        for i, (s, e) in zip(ids[:k], offs[:k]):
            piece = tok.token_bytes(i)
            assert piece in t[s:e].encode()  # a token lies inside the characters it points to
            if len(piece) == len(t[s:e].encode()):
                assert t[s:e].encode() == piece
    emoji = [o for i, o in zip(b.input_ids[1], b.offsets[1]) if tok.token_bytes(i)[0] >= 0xF0]
    assert emoji and all(texts[1][s:e] == "🐍" for s, e in emoji)
    assert tok.encode_batch(texts).input_ids == [tok.encode(t) for t in texts]  # no padding by default


def test_encode_batch_max_length_and_truncation(tok):
    texts = ["the quick brown fox jumps", "dog"]
    b = tok.encode_batch(texts, padding="max_length", truncation=True, max_length=4, add_eot=True)
    assert all(len(r) == 4 for r in b.input_ids + b.attention_mask + b.offsets)
    assert b.input_ids[0] == tok.encode(texts[0])[:4] and b.attention_mask[0] == [1, 1, 1, 1]
    k = len(tok.encode("dog")) + 1
    assert b.input_ids[1][:k] == tok.encode("dog") + [0] and b.offsets[1][k - 1] == (3, 3)
    assert tok.encode_batch(texts, truncation=True, max_length=2).input_ids == [tok.encode(t)[:2] for t in texts]


def test_offsets_refer_to_normalized_text(tok):
    text = "cafe\u0301 s"
    nfc = Tokenizer(normalization="NFC")
    ids, offs = nfc.encode_with_offsets(text)
    norm = nfc.normalize(text)
    assert norm == "café s" and offs[-1][1] == len(norm) and ids == nfc.encode(text)
    assert tok.encode_with_offsets(text)[1][-1][1] == len(text)   # without normalisation: the text's own indices
    ids, offs = tok.encode_with_offsets("a<|endoftext|>b", allowed_special="all")
    assert ids[1] == 0 and offs[1] == (1, 14)


# ---- saving and loading ---------------------------------------------------------------------------------------------
def test_save_load_gives_identical_ids(tok, tmp_path):
    tok.save(tmp_path / "tok")
    loaded = Tokenizer.load(tmp_path / "tok")
    assert loaded.merges == tok.merges and loaded.vocab == tok.vocab and repr(loaded) == repr(tok)
    for text in [*SAMPLES.values(), PARAGRAPH]:
        assert loaded.encode(text) == tok.encode(text)
    config = json.loads((tmp_path / "tok" / "config.json").read_text())
    assert config["format_version"] == 1 and config["vocab_size"] == tok.vocab_size
    merges = json.loads((tmp_path / "tok" / "merges.json").read_text())
    assert merges[0] == {"rank": 0, "pair": list(next(iter(tok.merges))), "token": tok.vocab[257]}
    assert sorted(p.name for p in (tmp_path / "tok").iterdir()) == ["config.json", "merges.json", "vocab.json"]
    tok.save(tmp_path / "tok")  # overwriting leaves no temporary files behind
    assert len(list((tmp_path / "tok").iterdir())) == 3
    assert all(p.stat().st_mode & 0o044 for p in (tmp_path / "tok").iterdir())  # readable by others too


def test_save_load_keeps_settings(tmp_path):
    t = Tokenizer(special_tokens=["<|endoftext|>", "<|sep|>"], normalization=None)
    t.train("ab ab ab", vocab_size=300, min_frequency=3, verbose=False).save(tmp_path)
    loaded = Tokenizer.load(tmp_path)
    assert loaded.special_tokens == ["<|endoftext|>", "<|sep|>"] and loaded.normalization is None
    assert loaded.min_frequency == 3 and loaded.merges == t.merges


def test_pickle_and_deepcopy_make_independent_tokenizers(tok):
    import copy
    import pickle
    for twin in (pickle.loads(pickle.dumps(tok)), copy.deepcopy(tok)):
        assert twin.encode(PARAGRAPH) == tok.encode(PARAGRAPH) and twin.merges == tok.merges
        twin.train("zz zz", vocab_size=260, verbose=False)  # retraining the copy leaves the original alone
        assert twin.encode("zz") == [twin.vocab_size - 1] and tok.encode("zz") == [ord("z") + 1] * 2


def _corrupt(tmp_path, tok, name, change):
    d = tmp_path / "t"
    tok.save(d)
    change(d / name)
    return d


@pytest.mark.parametrize("name,change,error,message", [
    ("merges.json", lambda p: p.unlink(), FileNotFoundError, r"merges\.json' is missing"),
    ("vocab.json", lambda p: p.write_text("{not json"), ValueError, r"vocab\.json': not valid JSON"),
    ("config.json", lambda p: p.write_text(p.read_text().replace('"format_version": 1', '"format_version": 9')),
     ValueError, r"config\.json': format_version 9"),
    ("config.json", lambda p: p.write_text(p.read_text().replace('"pattern"', '"patter"')),
     ValueError, r"config\.json': missing key 'pattern'"),
    ("config.json", lambda p: p.write_text(p.read_text().replace('"vocab_size": 340', '"vocab_size": 341')),
     ValueError, r"config\.json': vocab_size 341"),
    ("merges.json", lambda p: p.write_text(p.read_text().replace('"rank": 3,', '"rank": 4,')),
     ValueError, r"merges\.json': entry 3"),
    ("merges.json", lambda p: p.write_text(p.read_text().replace('"token": "', '"token": "x', 1)),
     ValueError, r"merges\.json': a 'token' differs"),
    ("vocab.json", lambda p: p.write_text(p.read_text().replace('"0": "<|endoftext|>"', '"0": "<|eot|>"')),
     ValueError, r"vocab\.json': it does not match"),
])
def test_load_reports_the_broken_file(tok, tmp_path, name, change, error, message):
    d = _corrupt(tmp_path, tok, name, change)
    with pytest.raises(error, match=message):
        Tokenizer.load(d)


def test_load_missing_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match="no tokenizer directory at .*nowhere"):
        Tokenizer.load(tmp_path / "nowhere")


# ---- error paths -----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("call,error,message", [
    (lambda t: t.encode(b"bytes"), TypeError, "text must be str, got bytes"),
    (lambda t: t.encode(None), TypeError, "text must be str, got NoneType"),
    (lambda t: t.encode("x", allowed_special={"<|nope|>"}), ValueError, r"allowed_special has \['<\|nope\|>'\]"),
    (lambda t: t.encode("x", allowed_special="some"), ValueError, "allowed_special must be 'all', 'none' or a set"),
    (lambda t: t.encode_batch("one text"), TypeError, "encode_batch takes a list of str"),
    (lambda t: t.encode_batch(["a"], padding="wide"), ValueError, "padding must be True, False"),
    (lambda t: t.encode_batch(["a"], padding="max_length"), ValueError, "need a positive int max_length"),
    (lambda t: t.encode_batch(["a"], truncation=True, max_length=0), ValueError, "need a positive int max_length"),
    (lambda t: t.encode_batch(["a b c d"], padding="max_length", max_length=2), ValueError,
     r"text 0 has \d+ tokens, more than max_length=2: pass truncation=True"),
    (lambda t: t.decode([1, 99999]), ValueError, "token id 99999 is out of range for a vocabulary of 340 ids"),
    (lambda t: t.decode([-1]), ValueError, "token id -1 is out of range"),
    (lambda t: t.decode([1.0]), TypeError, "token ids must be integers"),
    (lambda t: t.train("abc", vocab_size=256), ValueError, r"vocab_size=256 is below 256 bytes \+ 1 special"),
    (lambda t: t.train("abc", vocab_size=300.0), TypeError, "vocab_size and min_frequency must be int, got float"),
    (lambda t: t.train("abc", vocab_size=300, min_frequency=0), ValueError, "min_frequency must be at least 1"),
    (lambda t: t.train(42, vocab_size=300), TypeError, "training data must be a str, a Path or an iterable"),
    (lambda t: t.train([b"bytes"], vocab_size=300), TypeError, "must be str texts or pathlib.Path files, got bytes"),
    (lambda t: t.train([Path("/no/such/file.txt")], vocab_size=300), FileNotFoundError,
     "training file '/no/such/file.txt' does not exist"),
])
def test_error_messages(tok, call, error, message):
    with pytest.raises(error, match=message):
        call(tok)


@pytest.mark.parametrize("kwargs,message", [
    ({"special_tokens": []}, "special_tokens must be a non-empty list"),
    ({"special_tokens": ["<a>", "<a>"]}, "special_tokens has duplicates"),
    ({"normalization": "nfc"}, "normalization must be 'NFC', 'NFD', 'NFKC', 'NFKD' or None, got 'nfc'"),
])
def test_constructor_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Tokenizer(**kwargs)


# ---- CLI and docs ----------------------------------------------------------------------------------------------------
def test_cli_train_encode_decode(tmp_path, capsys):
    (tmp_path / "a.txt").write_text(PARAGRAPH)
    tokenizer.main(["train", "--input", str(tmp_path / "a.txt"), "--vocab-size", "300", "--out", str(tmp_path / "t"),
                    "--quiet"])
    assert "vocab_size=300" in capsys.readouterr().out
    tokenizer.main(["encode", "--tokenizer", str(tmp_path / "t"), "the fox"])
    ids = capsys.readouterr().out.split()
    assert [int(i) for i in ids] == Tokenizer.load(tmp_path / "t").encode("the fox")
    tokenizer.main(["decode", "--tokenizer", str(tmp_path / "t"), *ids])
    assert capsys.readouterr().out == "the fox\n"


def test_cli_reports_errors_without_a_traceback(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        tokenizer.main(["encode", "--tokenizer", str(tmp_path / "missing"), "hi"])
    assert exit_info.value.code == 1 and "error: no tokenizer directory" in capsys.readouterr().err


def test_cli_train_refuses_a_folder_with_other_files_before_training(tmp_path, capsys, monkeypatch):
    (tmp_path / "a.txt").write_text(PARAGRAPH)
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    (ckpt / "config.json").write_text('{"model": {}}')   # a model checkpoint's config
    (ckpt / "model.safetensors").write_bytes(b"weights")
    argv = ["train", "--input", str(tmp_path / "a.txt"), "--vocab-size", "300", "--out", str(ckpt), "--quiet"]
    trained = []
    monkeypatch.setattr(Tokenizer, "train", lambda self, *a, **k: trained.append(1) or self)
    with pytest.raises(SystemExit) as exit_info:
        tokenizer.main(argv)
    err = capsys.readouterr().err
    assert exit_info.value.code == 1 and not trained
    assert f"--out '{ckpt}' already holds files (config.json, model.safetensors)" in err and "--overwrite" in err
    assert (ckpt / "config.json").read_text() == '{"model": {}}'
    monkeypatch.undo()
    tokenizer.main(argv + ["--overwrite"])
    assert "saved Tokenizer" in capsys.readouterr().out and Tokenizer.load(ckpt).vocab_size == 300
    tokenizer.main(argv[:-2] + [str(tmp_path / "new"), "--quiet", "--nfc"])       # a new folder needs no flag
    assert Tokenizer.load(tmp_path / "new").normalization == "NFC"


def test_cli_train_names_a_file_that_is_not_utf8(tmp_path, capsys):
    (tmp_path / "bad.txt").write_bytes(b"caf\xe9 au lait")   # Latin-1, not UTF-8
    with pytest.raises(SystemExit) as exit_info:
        tokenizer.main(["train", "--input", str(tmp_path / "bad.txt"), "--vocab-size", "300", "--out",
                        str(tmp_path / "t"), "--quiet"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 1
    assert f"error: training file '{tmp_path / 'bad.txt'}' is not UTF-8 text: byte 0xe9 at offset 3" in err


def test_cli_train_says_when_vocab_size_was_not_reached(tmp_path, capsys):
    (tmp_path / "a.txt").write_text("abcd abcd xyz")
    tokenizer.main(["train", "--input", str(tmp_path / "a.txt"), "--vocab-size", "10000000", "--out",
                    str(tmp_path / "t"), "--quiet"])
    assert "note: stopped at 260 ids, not 10000000" in capsys.readouterr().out


def test_cli_demo_runs(capsys):
    tokenizer.main([])
    out = capsys.readouterr().out
    assert "Zen of Python" in out and "decode(encode(text)) == text: True" in out


def test_docstring_examples():
    assert doctest.testmod(tokenizer).failed == 0
