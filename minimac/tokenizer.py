"""Byte-level BPE tokenizer: GPT-2's byte alphabet with a Llama-3/Qwen2-like pre-tokeniser and single digits. Lesson 01.

text -> (optional normalisation) -> pre-tokens (a regex) -> UTF-8 bytes -> BPE merges (minimac/bpe.py) -> ids.
Ids: the special tokens first (`<|endoftext|>` = 0, which is also the pad and eos id), then the 256 bytes in byte order
(byte b -> b + 1), then one id per merge in merge order. Every string is bytes, so nothing is ever `<UNK>`, and a fresh
`Tokenizer()` (no merges) is already a working 257-id byte tokenizer.

    >>> tok = Tokenizer().train("the cat sat on the mat. " * 50, vocab_size=270, verbose=False)
    >>> tok.decode(tok.encode("the cat")) == "the cat", len(tok.encode("the cat")) < len("the cat")
    (True, True)

Round trip: `decode(encode(s)) == s` for every str, as GPT-2, tiktoken and Llama 3 promise: by default nothing is
normalised. `normalization="NFC"` (or NFD, NFKC, NFKD) is an option: then "e\\u0301" and "\\u00e9" encode alike, and
text comes back in that form. A saved tokenizer keeps its setting (files saved when NFC was the default load as NFC).
A lone surrogate ("\\ud800") is not Unicode text and has no UTF-8 form: encode raises ValueError rather than smuggle
it through. Offsets index the normalised text (`tok.normalize(s)`, the text itself when normalization is None).
CLI: `python -m minimac.tokenizer` (demo) | `train --input F.. --vocab-size N --out DIR [--overwrite] [--nfc]` |
`encode` | `decode`. `train` refuses an --out folder that already holds files, before training, unless --overwrite.
Not covered: BOS tokens, left padding, training on more text than fits in memory.
"""
from __future__ import annotations

import argparse
import functools
import json
import operator
import os
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from minimac import bpe
from minimac.files import atomic_write

EOT = "<|endoftext|>"
FORMAT_VERSION = 1
CACHE_SIZE = 50_000
# The seed's pattern (cl100k/Qwen2 with single digits) needs the third-party `regex` package for \p{L} and \p{N}:
#   (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
# In the standard `re`, \w is "letter, number or _" and \d a decimal digit, so a letter is [^\W\d_], a number is \d,
# and "neither space, letter nor number" is [^\s\w]|_ . Differences from `regex`: non-decimal numbers (² ½ Ⅻ, Unicode
# No/Nl) count as letters, \x1c-\x1f count as spaces, and Unicode versions differ. Every char is still matched by some
# branch, so no text is ever dropped.
PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|(?:[^\r\n\w]|_)?[^\W\d_]+|\d| ?(?:[^\s\w]|_)+[\r\n]*"
           r"|\s*[\r\n]+|\s+(?!\S)|\s+")
_SURROGATE = re.compile("[\ud800-\udfff]")
_BYTE_TO_CHAR = bpe.bytes_to_unicode()


@dataclass
class BatchEncoding:
    """`encode_batch`'s result: one row per text. Pads have id `pad_id`, mask 0 and offsets (0, 0)."""
    input_ids: list[list[int]]
    attention_mask: list[list[int]]
    offsets: list[list[tuple[int, int]]]  # (start, end) characters of the normalised text


class Tokenizer:
    def __init__(self, special_tokens: Iterable[str] = (EOT,), normalization: str | None = None,
                 pattern: str = PATTERN):
        special_tokens = list(special_tokens)
        if not special_tokens or not all(isinstance(s, str) and s for s in special_tokens):
            raise ValueError(f"special_tokens must be a non-empty list of non-empty strings, got {special_tokens!r}")
        if len(set(special_tokens)) != len(special_tokens):
            raise ValueError(f"special_tokens has duplicates: {special_tokens!r}")
        if normalization not in (None, "NFC", "NFD", "NFKC", "NFKD"):
            raise ValueError(f"normalization must be 'NFC', 'NFD', 'NFKC', 'NFKD' or None, got {normalization!r}")
        self.special_tokens, self.normalization, self.pattern = special_tokens, normalization, pattern
        self._regex = re.compile(pattern)
        self.min_frequency = 2
        self._set_merges([])

    def _set_merges(self, merges: list[bpe.Pair]) -> None:
        first = len(self.special_tokens) + 256
        self.merges = {pair: first + rank for rank, pair in enumerate(merges)}  # (a, b) -> new id, in rank order
        self._bytes = [s.encode() for s in self.special_tokens] + [bytes([b]) for b in range(256)]
        for a, b in merges:  # a merge's parts always have smaller ids, so they are already in the list
            self._bytes.append(self._bytes[a] + self._bytes[b])
        # A per-instance LRU cache, so retraining or loading starts with an empty one.
        self._encode_word = functools.lru_cache(maxsize=CACHE_SIZE)(self._encode_word_uncached)

    vocab_size = property(lambda self: len(self._bytes), doc="number of ids: specials + 256 bytes + merges")
    eot_id = pad_id = eos_id = property(lambda self: 0, doc="id of special_tokens[0]: end of text, eos and padding")

    @property
    def vocab(self) -> dict[int, str]:
        """id -> token, bytes written in GPT-2's printable alphabet ("Ġthe" is " the"); specials as they are."""
        n = len(self.special_tokens)
        return {i: (self.special_tokens[i] if i < n else "".join(_BYTE_TO_CHAR[b] for b in bs))
                for i, bs in enumerate(self._bytes)}

    def token_bytes(self, token_id: int) -> bytes:
        return self._bytes[token_id]

    def clear_cache(self) -> None:
        """Forget the cached pre-token encodings (to time encoding of unseen text, or to free memory)."""
        self._encode_word.cache_clear()

    def __getstate__(self) -> dict:  # for pickle and deepcopy: the cache holds a bound method, so rebuild it
        return {k: v for k, v in self.__dict__.items() if k != "_encode_word"}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._encode_word = functools.lru_cache(maxsize=CACHE_SIZE)(self._encode_word_uncached)

    def __repr__(self) -> str:
        return (f"Tokenizer(vocab_size={self.vocab_size}, merges={len(self.merges)}, "
                f"special_tokens={self.special_tokens}, normalization={self.normalization!r})")

    # ---- training -----------------------------------------------------------------------------------------------
    def train(self, text_or_iterable: str | os.PathLike | Iterable[str | os.PathLike], vocab_size: int,
              min_frequency: int = 2, verbose: bool = True) -> Tokenizer:
        """Learn merges until `vocab_size` ids, or until no pair occurs `min_frequency` times; returns self.

        Accepts one str, or an iterable whose str items are texts and whose Path items are UTF-8 files. Ties between
        equally frequent pairs go to the smallest pair of ids (see bpe.train_bpe). Special-token text in the data is
        a boundary: it is never merged into ordinary tokens.
        """
        if not isinstance(vocab_size, int) or not isinstance(min_frequency, int):
            raise TypeError(f"vocab_size and min_frequency must be int, got {type(vocab_size).__name__} and "
                            f"{type(min_frequency).__name__}")
        if vocab_size < 256 + len(self.special_tokens):
            raise ValueError(f"vocab_size={vocab_size} is below 256 bytes + {len(self.special_tokens)} special tokens")
        if min_frequency < 1:
            raise ValueError(f"min_frequency must be at least 1, got {min_frequency}")
        items = [text_or_iterable] if isinstance(text_or_iterable, (str, os.PathLike, bytes)) else text_or_iterable
        if not isinstance(items, Iterable):
            raise TypeError(f"training data must be a str, a Path or an iterable of them, got {type(items).__name__}")
        from rich.progress import Progress  # imported here: encoding and loading never need rich
        with Progress(disable=not verbose, transient=False) as progress:
            words: Counter[str] = Counter()
            task = progress.add_task("counting words", total=len(items) if hasattr(items, "__len__") else None)
            split = self._special_regex(self.special_tokens)
            for item in items:
                for chunk in split.split(self.normalize(_read(item)))[::2]:  # odd items are the specials
                    words.update(self._regex.findall(chunk))
                progress.advance(task)
            n = len(self.special_tokens)
            word_ids = {tuple(b + n for b in w.encode()): c for w, c in words.items()}
            task = progress.add_task(f"merging ({len(word_ids):,} distinct words)", total=vocab_size - n - 256)
            merges = bpe.train_bpe(word_ids, vocab_size - n - 256, first_id=n + 256, min_frequency=min_frequency,
                                   on_merge=lambda k: progress.update(task, completed=k))
        self.min_frequency = min_frequency
        self._set_merges(merges)
        return self

    # ---- encoding -----------------------------------------------------------------------------------------------
    def normalize(self, text: str) -> str:
        """The text that encoding sees (and offsets index): type-checked, surrogate-free, normalised."""
        if not isinstance(text, str):
            raise TypeError(f"text must be str, got {type(text).__name__}")
        if (m := _SURROGATE.search(text)) is not None:
            raise ValueError(f"text has a lone surrogate U+{ord(m.group()):04X} at index {m.start()}: it is not "
                             "Unicode text and has no UTF-8 form (clean it, e.g. s.encode('utf-8', 'replace').decode())")
        return unicodedata.normalize(self.normalization, text) if self.normalization else text

    def _encode_word_uncached(self, word: str) -> tuple[int, ...]:
        n = len(self.special_tokens)
        return tuple(bpe.encode_word([b + n for b in word.encode()], self.merges))

    @staticmethod
    def _special_regex(specials: Iterable[str]) -> re.Pattern:
        # Longest first, so a special that contains another wins; the group keeps the matches in re.split's output.
        return re.compile("(" + "|".join(map(re.escape, sorted(specials, key=len, reverse=True))) + ")")

    def _chunks(self, text: str, allowed_special) -> Iterable[tuple[int, str, int | None]]:
        """Yield (start, chunk, special id or None); special text outside `allowed_special` stays plain text."""
        if allowed_special == "all":
            allowed = set(self.special_tokens)
        elif allowed_special in ("none", None):
            allowed = set()
        elif isinstance(allowed_special, (set, frozenset, list, tuple)):
            allowed = set(allowed_special)
            if unknown := allowed - set(self.special_tokens):
                raise ValueError(f"allowed_special has {sorted(unknown)}, not special tokens of this tokenizer "
                                 f"(it has {self.special_tokens})")
        else:
            raise ValueError(f"allowed_special must be 'all', 'none' or a set of special tokens, got {allowed_special!r}")
        parts = self._special_regex(allowed).split(text) if allowed else [text]
        start = 0
        for k, part in enumerate(parts):  # odd positions are the separators, i.e. the specials
            if part:
                yield start, part, (self.special_tokens.index(part) if k % 2 else None)
            start += len(part)

    def encode(self, text: str, allowed_special: str | set[str] = "none", add_eot: bool = False) -> list[int]:
        """Text -> ids. `allowed_special`: "all", "none" (default: special text is encoded as plain text) or a set.

        `add_eot=True` appends the end-of-text id (0), which marks a document boundary.
        """
        ids: list[int] = []
        for _, chunk, special in self._chunks(self.normalize(text), allowed_special):
            if special is not None:
                ids.append(special)
            else:
                for word in self._regex.findall(chunk):
                    ids.extend(self._encode_word(word))
        return ids + [self.eot_id] if add_eot else ids

    def encode_with_offsets(self, text: str, allowed_special: str | set[str] = "none",
                            add_eot: bool = False) -> tuple[list[int], list[tuple[int, int]]]:
        """Like encode, plus each token's (start, end) characters in `normalize(text)`. A token that holds only part
        of a character (one byte of an emoji) gets that whole character's span."""
        text = self.normalize(text)
        ids, offsets = [], []
        for start, chunk, special in self._chunks(text, allowed_special):
            if special is not None:
                ids.append(special)
                offsets.append((start, start + len(chunk)))
                continue
            for m in self._regex.finditer(chunk):
                word, word_ids = m.group(), self._encode_word(m.group())
                owner = [c for c, ch in enumerate(word) for _ in ch.encode()]  # byte -> char index in the word
                pos, base = 0, start + m.start()
                for i in word_ids:
                    n = len(self._bytes[i])
                    offsets.append((base + owner[pos], base + owner[pos + n - 1] + 1))
                    pos += n
                ids.extend(word_ids)
        if add_eot:
            ids.append(self.eot_id)
            offsets.append((len(text), len(text)))
        return ids, offsets

    def encode_batch(self, texts: list[str], allowed_special: str | set[str] = "none", add_eot: bool = False,
                     padding: bool | str = False, truncation: bool = False,
                     max_length: int | None = None) -> BatchEncoding:
        """Encode several texts. padding: False, True or "longest" (to the longest row), "max_length" (to max_length;
        a longer row needs truncation=True). truncation=True keeps the first max_length ids (eot included)."""
        if isinstance(texts, str) or not isinstance(texts, (list, tuple)):
            raise TypeError(f"encode_batch takes a list of str (use encode for one text), got {type(texts).__name__}")
        padding = {True: "longest", False: None, "do_not_pad": None}.get(padding, padding)
        if padding not in (None, "longest", "max_length"):
            raise ValueError(f"padding must be True, False, 'longest' or 'max_length', got {padding!r}")
        if (padding == "max_length" or truncation) and not (isinstance(max_length, int) and max_length > 0):
            raise ValueError(f"padding='max_length' and truncation=True need a positive int max_length, got {max_length!r}")
        rows = [self.encode_with_offsets(t, allowed_special, add_eot) for t in texts]
        if truncation:
            rows = [(ids[:max_length], offs[:max_length]) for ids, offs in rows]
        width = max((len(ids) for ids, _ in rows), default=0) if padding == "longest" else max_length
        out = BatchEncoding([], [], [])
        for r, (ids, offs) in enumerate(rows):
            pad = width - len(ids) if padding else 0
            if pad < 0:
                raise ValueError(f"text {r} has {len(ids)} tokens, more than max_length={max_length}: "
                                 "pass truncation=True or a larger max_length")
            out.input_ids.append(ids + [self.pad_id] * pad)
            out.attention_mask.append([1] * len(ids) + [0] * pad)
            out.offsets.append(offs + [(0, 0)] * pad)
        return out

    def decode(self, ids: Iterable[int], skip_special_tokens: bool = False) -> str:
        """Ids -> text; bytes that are not valid UTF-8 (a cut-off emoji) become U+FFFD. Raises on unknown ids."""
        try:
            ids = [operator.index(i) for i in ids]  # accepts numpy integers, refuses floats and strings
        except TypeError as e:
            raise TypeError(f"token ids must be integers: {e}") from None
        if bad := [i for i in ids if not 0 <= i < self.vocab_size]:
            raise ValueError(f"token id {bad[0]} is out of range for a vocabulary of {self.vocab_size} ids")
        n = len(self.special_tokens) if skip_special_tokens else 0
        return b"".join(self._bytes[i] for i in ids if i >= n).decode("utf-8", errors="replace")

    # ---- saving and loading -------------------------------------------------------------------------------------
    def save(self, directory: str | os.PathLike) -> Path:
        """Write config.json, vocab.json (id -> token) and merges.json (one merge per line), each atomically."""
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        vocab = self.vocab
        merges = [{"rank": r, "pair": list(p), "token": vocab[i]} for r, (p, i) in enumerate(self.merges.items())]
        atomic_write(d / "vocab.json",
                     json.dumps({str(i): t for i, t in vocab.items()}, ensure_ascii=False, indent=0) + "\n")
        atomic_write(d / "merges.json", "[\n" + ",\n".join(json.dumps(m, ensure_ascii=False) for m in merges) + "\n]\n")
        config = {"format_version": FORMAT_VERSION, "vocab_size": self.vocab_size, "num_merges": len(self.merges),
                  "min_frequency": self.min_frequency, "special_tokens": self.special_tokens,
                  "normalization": self.normalization, "pattern": self.pattern}
        atomic_write(d / "config.json", json.dumps(config, ensure_ascii=False, indent=2) + "\n")
        return d

    @classmethod
    def load(cls, directory: str | os.PathLike) -> Tokenizer:
        """Read a directory written by save; a missing or corrupt file raises an error naming it."""
        d = Path(directory)
        if not d.is_dir():
            raise FileNotFoundError(f"no tokenizer directory at '{d}'")
        config, vocab, merges = (_read_json(d / name) for name in ("config.json", "vocab.json", "merges.json"))
        where = d / "config.json"
        try:
            if config["format_version"] != FORMAT_VERSION:
                raise ValueError(f"format_version {config['format_version']!r}; this minimac reads {FORMAT_VERSION}")
            tok = cls(config["special_tokens"], config["normalization"], config["pattern"])
            tok.min_frequency = config["min_frequency"]
            where = d / "merges.json"
            pairs = []
            for r, m in enumerate(merges):
                a, b = m["pair"]
                if m["rank"] != r or not all(isinstance(x, int) and 0 <= x < tok.vocab_size + r for x in (a, b)):
                    raise ValueError(f"entry {r} ({m}) has a wrong rank or an id that is not defined before it")
                pairs.append((a, b))
            tok._set_merges(pairs)
            expected = tok.vocab
            if [m["token"] for m in merges] != [expected[i] for i in tok.merges.values()]:
                raise ValueError("a 'token' differs from the concatenation of its pair")
            where = d / "config.json"
            if config["vocab_size"] != tok.vocab_size:
                raise ValueError(f"vocab_size {config['vocab_size']} != {tok.vocab_size} (specials + 256 + merges)")
            where = d / "vocab.json"
            if vocab != {str(i): t for i, t in expected.items()}:
                raise ValueError("it does not match the tokens rebuilt from merges.json")
        except (KeyError, TypeError, ValueError, re.error) as e:
            what = f"missing key {e}" if isinstance(e, KeyError) else str(e)
            raise ValueError(f"corrupt tokenizer file '{where}': {what}") from e
        return tok


def _read(item: str | os.PathLike) -> str:
    if isinstance(item, str):
        return item
    if isinstance(item, os.PathLike):
        path = Path(item)
        if not path.is_file():
            raise FileNotFoundError(f"training file '{path}' does not exist or is not a file")
        try:
            return path.read_text(encoding="utf-8-sig")  # utf-8-sig drops a BOM; text mode turns \r\n into \n
        except UnicodeDecodeError as e:
            raise ValueError(f"training file '{path}' is not UTF-8 text: byte {e.object[e.start]:#04x} at offset "
                             f"{e.start} ({e.reason})") from None
    raise TypeError(f"training data must be str texts or pathlib.Path files, got {type(item).__name__}")


def _read_json(path: Path):
    if not path.is_file():
        raise FileNotFoundError(f"tokenizer file '{path}' is missing (save() writes config.json, vocab.json and "
                                "merges.json)")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"corrupt tokenizer file '{path}': not valid JSON ({e})") from e


def check_out(out: Path, overwrite: bool) -> None:
    """Refuse an output folder that already holds files (a model checkpoint's config.json, say), unless overwrite."""
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out '{out}' is a file, not a folder")
    held = sorted(p.name for p in out.iterdir()) if out.is_dir() else []
    if held and not overwrite:
        listed = ", ".join(held[:5]) + (f" and {len(held) - 5} more" if len(held) > 5 else "")
        raise ValueError(f"--out '{out}' already holds files ({listed}); the tokenizer would write config.json, "
                         "vocab.json and merges.json there. Pick a new or empty folder, or pass --overwrite")


def _demo() -> None:
    """Train on the Zen of Python (the standard library's `this` module) and show what BPE learned."""
    import codecs
    import contextlib
    import io

    from rich.console import Console
    from rich.table import Table
    with contextlib.redirect_stdout(io.StringIO()):
        import this  # importing it prints the poem; we only want its (rot13-encoded) text
    text = codecs.decode(this.s, "rot13")
    tok, console = Tokenizer().train(text, vocab_size=300, verbose=False), Console()
    console.print(f"Trained {tok} on the Zen of Python ({len(text)} characters). The first merges:")
    table, vocab = Table("rank", "pair", "new token", "id"), tok.vocab
    for rank, ((a, b), i) in enumerate(list(tok.merges.items())[:12]):
        table.add_row(str(rank), f"{vocab[a]!r} + {vocab[b]!r}", repr(vocab[i]), str(i))
    console.print(table, "('Ġ' is GPT-2's printable stand-in for a space byte)")
    sample = "Beautiful is better than ugly, 2 × 🐍."
    ids = tok.encode(sample)
    console.print(f"{sample!r} -> {len(ids)} ids for {len(sample.encode())} bytes: {ids}")
    console.print("tokens: " + " | ".join(repr(tok.token_bytes(i))[2:-1] for i in ids))
    console.print(f"decode(encode(text)) == text: {tok.decode(ids) == sample}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m minimac.tokenizer",
                                     description="Byte-level BPE: train, encode, decode. With no command: a demo.")
    sub = parser.add_subparsers(dest="command")
    p = sub.add_parser("train", help="learn merges from UTF-8 text files and save the tokenizer")
    p.add_argument("--input", nargs="+", type=Path, required=True, metavar="FILE")
    p.add_argument("--vocab-size", type=int, required=True)
    p.add_argument("--min-frequency", type=int, default=2)
    p.add_argument("--out", type=Path, required=True, metavar="DIR")
    p.add_argument("--overwrite", action="store_true", help="write into --out even if it already holds files")
    p.add_argument("--nfc", action="store_true", help="normalise text to NFC (lossy: 'e\\u0301' comes back as "
                                                      "'\\u00e9'); default: none, every string round-trips exactly")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p = sub.add_parser("encode", help="print the ids of a text")
    p.add_argument("--tokenizer", type=Path, required=True, metavar="DIR")
    p.add_argument("text")
    p = sub.add_parser("decode", help="print the text of some ids")
    p.add_argument("--tokenizer", type=Path, required=True, metavar="DIR")
    p.add_argument("ids", nargs="+", type=int)
    args = parser.parse_args(argv)
    try:
        if args.command == "train":
            check_out(args.out, args.overwrite)   # before training: a refusal loses no work
            tok = Tokenizer(normalization="NFC" if args.nfc else None).train(args.input, args.vocab_size,
                                                                           args.min_frequency, verbose=not args.quiet)
            if tok.vocab_size < args.vocab_size:
                print(f"note: stopped at {tok.vocab_size} ids, not {args.vocab_size}: no pair of tokens occurs "
                      f"{args.min_frequency} times or more in the training text any more (more text, or a lower "
                      "--min-frequency, gives more merges)")
            print(f"saved {tok} to {tok.save(args.out)}")
        elif args.command == "encode":
            print(" ".join(map(str, Tokenizer.load(args.tokenizer).encode(args.text))))
        elif args.command == "decode":
            print(Tokenizer.load(args.tokenizer).decode(args.ids))
        else:
            _demo()
    except (OSError, ValueError, TypeError) as e:
        parser.exit(1, f"error: {e}\n")


if __name__ == "__main__":
    main()
