"""Corpora on disk and in memory, and the fixed-shape batches a training loop eats. Lesson 07 (data half).

Covers: getting a registered corpus (minimac/corpora.py) from an offline mirror (`MINIMAC_DATA`, laid out like
shared/data) or by download into a cache (`MINIMAC_CACHE`, default ~/.cache/minimac), checking every file's sha256;
the embedded "default" corpus, built from text that ships with every Python, so the demos work offline with no
setup; packing tokenised documents into one stream with `<|endoftext|>` between them; cutting that stream into
(B, T+1) batches. Leaves out: the tokenizer itself (minimac/tokenizer.py) and the training loop (minimac/train.py).

    >>> pack_tokens([[5, 6], [7]], eot_id=0).tolist()
    [0, 5, 6, 0, 7]
    >>> next(batches(np.arange(9), batch_size=2, seq_len=4, shuffle=False)).tolist()  # x = b[:, :-1], y = b[:, 1:]
    [[0, 1, 2, 3, 4], [4, 5, 6, 7, 8]]
"""
from __future__ import annotations

import functools
import hashlib
import http.client
import itertools
import os
import sysconfig
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from urllib.parse import quote

import numpy as np

from minimac.corpora import CORPORA, DOMAIN_ORDER, PROBES, SPLITS, Corpus, FileSpec, read_text, split_documents

__all__ = [  # the data half of lesson 07; minimac.corpora holds the registry and the cleaning
    "CORPORA", "DEFAULT_DOMAINS", "DOMAIN_ORDER", "PROBES", "SPLITS", "Batcher", "ChecksumError", "DownloadError",
    "batches", "corpus_text", "default_corpus", "encode_documents", "fetch", "get_corpus", "list_corpora",
    "load_corpus", "pack_tokens"]

MIRROR_ENV, CACHE_ENV, URL_ENV = "MINIMAC_DATA", "MINIMAC_CACHE", "MINIMAC_DATA_URL"
_OFFLINE_HINT = (f"To work offline, point {MIRROR_ENV} at a copy of the corpora laid out like shared/data, e.g. "
                 f"`export {MIRROR_ENV}=/path/to/shared/data`, or use the embedded `load_corpus('default', ...)`.")


class ChecksumError(ValueError):
    """A file's sha256 is not the one the registry pins (the message names the file and both hashes)."""


class DownloadError(ConnectionError):
    """A corpus file could not be downloaded (the message says how to work offline instead)."""


def list_corpora() -> list[str]:
    """Every name `load_corpus` accepts: the embedded "default" first, then the registry."""
    return ["default", *CORPORA]


def get_corpus(name: str) -> Corpus:
    if name not in CORPORA:
        raise ValueError(f"unknown corpus {name!r}; choose one of {list_corpora()}")
    return CORPORA[name]


def cache_dir() -> Path:
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "minimac")


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# ------------------------------------------------------------------------------ fetch: mirror or download

def fetch(name: str, *, mirror: str | os.PathLike | None = None, base_url: str | None = None,
          cache: str | os.PathLike | None = None, progress: bool = True) -> Path:
    """The folder holding corpus `name`'s files, every one checked against its sha256.

    With a mirror (`mirror=` or `$MINIMAC_DATA`) the files are read there and never downloaded. Otherwise missing
    files are downloaded into `cache` (default `$MINIMAC_CACHE/data` or ~/.cache/minimac/data) from their pinned
    upstream URLs, or from `base_url` (or `$MINIMAC_DATA_URL`): a server laid out like shared/data, such as a copy
    a teacher serves on the classroom network with `python -m http.server`."""
    corpus = get_corpus(name)
    mirror = mirror or os.environ.get(MIRROR_ENV)
    if mirror:
        return _from_mirror(corpus, Path(mirror))
    folder = Path(cache or cache_dir() / "data") / corpus.folder
    todo = []
    for spec in corpus.files:
        path = folder / spec.path
        if path.is_file() and sha256_file(path) == spec.sha256:
            continue
        path.unlink(missing_ok=True)  # a corrupt or stale cached copy is fetched again
        todo.append(spec)
    if todo:
        _download_all(corpus, todo, folder, base_url or os.environ.get(URL_ENV), progress)
    return folder


def _from_mirror(corpus: Corpus, root: Path) -> Path:
    folder = root / corpus.folder
    if not folder.is_dir():
        raise FileNotFoundError(f"the offline mirror {MIRROR_ENV}={root} has no folder {corpus.folder}/ for corpus "
                                f"{corpus.name!r}; it must be laid out like shared/data")
    for spec in corpus.files:
        path = folder / spec.path
        if not path.is_file():
            raise FileNotFoundError(f"the offline mirror ({MIRROR_ENV}) lacks {path} of corpus {corpus.name!r}")
        actual = sha256_file(path)
        if actual != spec.sha256:  # the mirror is the user's: report, never delete
            raise ChecksumError(f"checksum mismatch for {path} in the offline mirror ({MIRROR_ENV}): expected sha256 "
                                f"{spec.sha256}, got {actual}; replace it with the upstream file {spec.url}")
    return folder


def _download_all(corpus: Corpus, todo: list[FileSpec], folder: Path, base_url: str | None, progress: bool) -> None:
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn

    columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
               TimeRemainingColumn())
    with Progress(*columns, disable=not progress) as bar:
        task = bar.add_task(corpus.name, total=None)
        for i, spec in enumerate(todo, 1):
            bar.reset(task, total=None, description=f"{corpus.name} {i}/{len(todo)} {spec.path}")
            if base_url:  # a server laid out like the mirror holds the stored form
                url = f"{base_url.rstrip('/')}/{quote(corpus.folder)}/{quote(spec.path)}"
                _download(url, folder / spec.path, spec, False, bar, task)
            else:
                _download(spec.url, folder / spec.path, spec, spec.convert is not None, bar, task)


def _download(url: str, dest: Path, spec: FileSpec, convert: bool, bar, task) -> None:
    """Stream url into dest.part, hashing as it goes; only a file with the right sha256 is renamed to dest."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".part")
    h = hashlib.sha256()
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers={"User-Agent": "minimac"}), timeout=30) as r:
            bar.update(task, total=int(r.headers.get("Content-Length") or 0) or None)
            with open(tmp, "wb") as f:
                while chunk := r.read(1 << 16):
                    f.write(chunk)
                    h.update(chunk)
                    bar.advance(task, len(chunk))
    except (urllib.error.URLError, http.client.HTTPException, ConnectionError, TimeoutError) as e:
        tmp.unlink(missing_ok=True)
        reason = f"HTTP {e.code} {e.reason}" if isinstance(e, urllib.error.HTTPError) else getattr(e, "reason", e)
        raise DownloadError(f"could not download {url}: {reason}. {_OFFLINE_HINT}") from e
    if convert:  # upstream form (pydoc topics.py): check it, convert it, check the stored form
        _check_download(tmp, dest, url, spec.upstream_sha256, h.hexdigest())
        tmp.write_bytes(spec.convert(tmp.read_bytes()))
        _check_download(tmp, dest, url, spec.sha256, sha256_file(tmp))
    else:
        _check_download(tmp, dest, url, spec.sha256, h.hexdigest())
    os.replace(tmp, dest)  # atomic: dest is either absent or complete and verified


def _check_download(tmp: Path, dest: Path, url: str, expected: str | None, actual: str) -> None:
    if actual != expected:
        tmp.unlink(missing_ok=True)
        raise ChecksumError(f"checksum mismatch for {dest} downloaded from {url}: expected sha256 {expected}, "
                            f"got {actual}; the bad file was removed. Try again, or use an offline mirror "
                            f"({MIRROR_ENV}).")


# ---------------------------------------------------------------------------------------------- the embedded default

DEFAULT_DOMAINS = ("docs", "code")
# Pure-Python standard-library modules present (and not deprecated) in every Python from 3.10 to 3.13, chosen for
# readable, commented code; about 0.6 MB, the same order as the docs domain (0.47 MB on 3.11).
DEFAULT_CODE_MODULES = (
    "abc", "base64", "bisect", "calendar", "cmd", "code", "codeop", "colorsys", "contextlib", "copy", "copyreg", "csv",
    "dataclasses", "fnmatch", "fractions", "functools", "getopt", "glob", "graphlib", "heapq", "hmac", "linecache",
    "numbers", "operator", "pprint", "queue", "random", "reprlib", "sched", "secrets", "shlex", "statistics",
    "string", "textwrap", "timeit", "types", "weakref", "zipapp")


@functools.cache
def _default_domain(domain: str) -> dict[str, tuple[str, ...]]:
    if domain == "docs":  # the reference prose `help("with")` prints, 79 topics in sorted order
        try:
            from pydoc_data.topics import topics
        except ImportError as e:
            raise FileNotFoundError(f"this Python has no pydoc_data package. {_OFFLINE_HINT}") from e
        docs = [topics[k] for k in sorted(topics)]
    else:
        stdlib = Path(sysconfig.get_paths()["stdlib"])
        docs = [read_text(stdlib / f"{m}.py") for m in DEFAULT_CODE_MODULES if (stdlib / f"{m}.py").is_file()]
        if not docs:
            raise FileNotFoundError(f"no standard-library source under {stdlib} (only .pyc files?). {_OFFLINE_HINT}")
    return {s: tuple(d) for s, d in split_documents(docs).items()}  # 90/5/5 by characters, cut at blank lines


def default_corpus(split: str = "train") -> dict[str, list[str]]:
    """The embedded corpus, no download: {"docs": pydoc topics, "code": stdlib source}, each cut 90/5/5 in order.

    On CPython 3.11.7 (train / valid / test, documents and characters): docs 71 / 4 / 6 documents, 419 k / 25 k /
    22 k chars; code 34 / 3 / 3 documents, 533 k / 30 k / 29 k chars. Version-dependent (each Python ships its own
    topics and source), deterministic for a given one; for pinned text use the registry corpora."""
    return {d: load_corpus("default", split, domain=d) for d in DEFAULT_DOMAINS}


# ---------------------------------------------------------------------------------------------- load documents

@functools.lru_cache(maxsize=16)
def _load_splits(name: str, folder: str, options: tuple) -> dict[str, tuple[str, ...]]:
    splits = CORPORA[name].loader(Path(folder), **dict(options))
    return {s: tuple(docs) for s, docs in splits.items()}


def load_corpus(name: str, split: str = "train", *, domain: str | None = None, **options) -> list[str]:
    """The cleaned documents of one split of a corpus: `load_corpus("gsm8k", "test")[0]` -> "Question: ...".

    `name` is "default" (then `domain` is "docs" or "code") or a registry name from `list_corpora()`. Options go to
    the corpus's loader: `strip_calculator` (gsm8k, default True), `detokenize` (wikitext2, default False)."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose one of {list(SPLITS)}")
    if name == "default":
        if domain not in DEFAULT_DOMAINS or options:
            raise ValueError(f"the default corpus needs domain= one of {list(DEFAULT_DOMAINS)} and takes no options; "
                             f"got domain={domain!r}, options={sorted(options)}")
        return list(_default_domain(domain)[split])
    corpus = get_corpus(name)
    if domain is not None:
        raise ValueError(f"domain= is only for the 'default' corpus; {name!r} is a domain of its own")
    if split not in corpus.splits:
        hint = " (as a domain: train on 'valid', test on 'test')" if name == "wikitext2" else ""
        raise ValueError(f"corpus {name!r} has no {split!r} split; it has {list(corpus.splits)}{hint}")
    unknown = sorted(set(options) - set(corpus.options))
    if unknown:
        raise ValueError(f"corpus {name!r} takes options {sorted(corpus.options)}, got unknown {unknown}")
    folder = fetch(name)
    return list(_load_splits(name, str(folder), tuple(sorted({**corpus.options, **options}.items())))[split])


def corpus_text(name: str, split: str = "train", *, domain: str | None = None, separator: str = "\n\n",
                **options) -> str:
    """All documents of a split joined into one string (for tokenizer training or bits-per-byte counts)."""
    return separator.join(load_corpus(name, split, domain=domain, **options))


# ---------------------------------------------------------------------------------------------- packing and batching

def pack_tokens(docs_token_ids: Iterable[Sequence[int]], eot_id: int) -> np.ndarray:
    """One int32 stream with `eot_id` before every document: `[[5, 6], [7]], 0 -> [0, 5, 6, 0, 7]`.

    The separator goes first so that each document's first token is predicted from a clean "new document" context;
    empty documents are skipped."""
    if not isinstance(eot_id, (int, np.integer)) or isinstance(eot_id, bool) or eot_id < 0:
        raise TypeError(f"eot_id must be a non-negative int, got {eot_id!r}")
    parts = []
    for i, ids in enumerate(docs_token_ids):
        arr = np.asarray(ids, dtype=np.int64)
        if arr.ndim != 1 or (arr.size and (arr.min() < 0 or arr.max() > np.iinfo(np.int32).max)):
            raise ValueError(f"document {i}: token ids must be a flat list of non-negative int32 values")
        if arr.size:
            parts += [np.array([eot_id], dtype=np.int64), arr]
    return np.concatenate(parts).astype(np.int32) if parts else np.zeros(0, dtype=np.int32)


def encode_documents(docs: Sequence[str], tokenizer) -> np.ndarray:
    """Tokenise each document with `tokenizer.encode` and pack them with `tokenizer.eot_id` between them."""
    if isinstance(docs, str):
        raise TypeError("docs must be a list of documents, not one str; use load_corpus(...) or wrap it: [text]")
    if not callable(getattr(tokenizer, "encode", None)) or not hasattr(tokenizer, "eot_id"):
        raise TypeError(f"tokenizer needs .encode(str) -> list[int] and .eot_id, got {type(tokenizer).__name__}")
    return pack_tokens((tokenizer.encode(d) for d in docs), tokenizer.eot_id)


class Batcher:
    """Fixed-shape (batch_size, seq_len + 1) int32 batches from one token stream: x = b[:, :-1], y = b[:, 1:].

    The stream is cut into windows of seq_len + 1 tokens starting every seq_len tokens: neighbours share one token,
    so every token but the first is a target exactly once per epoch. An epoch visits the windows in an order drawn
    from (seed, epoch) (or in stream order with shuffle=False) and drops the last incomplete batch, so the shape
    never changes, as TinyJit needs. Iterating a Batcher runs one epoch; iterating again runs the next one;
    `batcher(step)` gives batch `step` directly (epoch step // len(batcher)), which is what minimac.train wants.
    `len(Batcher(np.arange(101), batch_size=2, seq_len=10))` -> 5 batches of shape (2, 11)."""

    def __init__(self, tokens: Sequence[int] | np.ndarray, batch_size: int, seq_len: int, seed: int = 0,
                 shuffle: bool = True):
        for label, v in (("batch_size", batch_size), ("seq_len", seq_len)):
            if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 1:
                raise ValueError(f"{label} must be a positive int, got {v!r}")
        self.tokens = np.asarray(tokens)
        if self.tokens.ndim != 1 or not (self.tokens.size == 0 or np.issubdtype(self.tokens.dtype, np.integer)):
            raise ValueError(f"tokens must be a 1-D array of integer ids, got shape {self.tokens.shape} "
                             f"dtype {self.tokens.dtype}")
        if self.tokens.size and (self.tokens.min() < 0 or self.tokens.max() > np.iinfo(np.int32).max):
            raise ValueError("tokens must be non-negative ids that fit in int32")
        self.tokens = self.tokens.astype(np.int32)
        self.batch_size, self.seq_len, self.seed, self.shuffle = int(batch_size), int(seq_len), seed, shuffle
        need = self.batch_size * self.seq_len + 1
        if len(self.tokens) < need:
            raise ValueError(f"need at least {need} tokens for one batch of {batch_size} x {seq_len} (+1 for the "
                             f"shifted targets), but the corpus has {len(self.tokens)}; use more text or a smaller "
                             f"batch_size / seq_len")
        self.num_windows = (len(self.tokens) - 1) // self.seq_len
        self._next_epoch, self._cached_order = 0, (-1, np.arange(0))

    def __len__(self) -> int:
        return self.num_windows // self.batch_size

    def _order(self, epoch: int) -> np.ndarray:
        if self._cached_order[0] != epoch:  # one permutation per epoch, kept while steps stay in that epoch
            rng = np.random.default_rng([self.seed, epoch])
            self._cached_order = (epoch, rng.permutation(self.num_windows) if self.shuffle
                                  else np.arange(self.num_windows))
        return self._cached_order[1]

    def __call__(self, step: int) -> np.ndarray:
        """Batch number `step`, counting across epochs: what `Trainer(model, config, batches=...)` asks for, so a
        resumed run sees exactly the data an uninterrupted one would. (B, T+1) int32."""
        epoch, k = divmod(step, len(self))
        starts = self._order(epoch)[k * self.batch_size:(k + 1) * self.batch_size] * self.seq_len  # (B,)
        return self.tokens[starts[:, None] + np.arange(self.seq_len + 1)]  # (B, T+1)

    def epoch(self, epoch: int) -> Iterator[np.ndarray]:
        """The batches of epoch `epoch`, the same every time for the same seed."""
        return (self(epoch * len(self) + k) for k in range(len(self)))

    def __iter__(self) -> Iterator[np.ndarray]:
        self._next_epoch += 1
        return self.epoch(self._next_epoch - 1)


def batches(tokens: Sequence[int] | np.ndarray, batch_size: int, seq_len: int, seed: int = 0, shuffle: bool = True,
            epochs: int | None = 1) -> Iterator[np.ndarray]:
    """(batch_size, seq_len + 1) int32 batches for `epochs` epochs (None: forever), as `Batcher` makes them."""
    batcher = Batcher(tokens, batch_size, seq_len, seed, shuffle)  # checks the arguments now, not at the first next()
    epoch_numbers = itertools.count() if epochs is None else range(epochs)
    return itertools.chain.from_iterable(batcher.epoch(e) for e in epoch_numbers)
