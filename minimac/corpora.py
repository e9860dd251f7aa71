"""The registry of real corpora: where each file comes from, its sha256, its licence, and how to clean and split it.
Lesson 07 (data half).

Every corpus here is a folder of the project's shared/data (see its README.md and each PROVENANCE.md): raw GitHub
files pinned to a commit or tag, stored unmodified, so one sha256 per file pins the content. A loader turns a
folder of such files into clean documents, cut into deterministic train / valid / test splits by the rules of the
README's table. Not covered here: getting the files (download, cache, offline mirror: minimac/data.py), tokenising
and batching (also minimac/data.py).

    >>> split_items(["a", "b", "c", "d"], every=4, valid=(2,), test=(3,))
    {'train': ['a', 'b'], 'valid': ['c'], 'test': ['d']}
    >>> split_text("one\\n\\ntwo\\n\\nthree", fractions=(0.3, 0.3, 0.4))
    ('one', 'two', 'three')
"""
from __future__ import annotations

import ast
import itertools
import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

SPLITS = ("train", "valid", "test")
# The README's continual-learning sequence: nearest to farthest from the base, so forgetting grows stage by stage.
DOMAIN_ORDER = ("gutenberg", "tinyshakespeare", "scotus", "medquad", "gsm8k", "python_stdlib")
PROBES = ("wikitext2",)  # evaluation only: general English the model is never trained on

Splits = dict[str, list[str]]


@dataclass(frozen=True)
class FileSpec:
    """One stored file: `path` inside the corpus folder, its sha256, and the upstream URL it comes from.

    `convert` is for the one corpus whose stored form differs from upstream (pydoc topics: topics.py -> JSONL);
    then `upstream_sha256` checks the downloaded bytes before conversion and `sha256` checks the result."""
    path: str
    sha256: str
    url: str
    upstream_sha256: str | None = None
    convert: Callable[[bytes], bytes] | None = None


@dataclass(frozen=True)
class Corpus:
    """A registered corpus: its files, licence and the loader that cleans and splits them (see `_registry`)."""
    name: str
    folder: str  # folder name in shared/data, in the cache and in a MINIMAC_DATA mirror
    role: str  # "base", "domain" or "probe"
    description: str
    licence: str
    source: str
    files: tuple[FileSpec, ...]
    loader: Callable[..., Splits]  # loader(folder: Path, **options) -> {"train": [doc, ...], "valid": ..., "test": ...}
    splits: tuple[str, ...] = SPLITS
    options: dict[str, object] = field(default_factory=dict)  # loader keyword options and their defaults


# ---------------------------------------------------------------------------------------------- split helpers

def split_items(items: Sequence[str], every: int = 20, valid: tuple[int, ...] = (18,),
                test: tuple[int, ...] = (19,)) -> Splits:
    """The README's "i % 20" rule: item i goes to valid if i % every is in `valid`, to test if in `test`, else train.

    Items are sorted first, so the split depends only on the names, never on directory order."""
    out: Splits = {s: [] for s in SPLITS}
    for i, item in enumerate(sorted(items)):
        r = i % every
        out["valid" if r in valid else "test" if r in test else "train"].append(item)
    return out


def _nearest_cut(text: str, pos: int, start: int) -> int:
    """The legal cut in text[start:] nearest to pos: a blank line ("\\n\\n"), or either end of the document."""
    pos = max(pos, start)
    before, after = text.rfind("\n\n", start, pos + 1), text.find("\n\n", pos)
    candidates = [i for i in (before, after) if i >= start] + [start, len(text)]
    return min(candidates, key=lambda i: abs(i - pos))  # ties go to a blank line: listed first


def split_documents(docs: Sequence[str], fractions: tuple[float, float, float] = (0.9, 0.05, 0.05)) -> Splits:
    """Cut the documents, in order, into train / valid / test by character count, at blank lines.

    Think of the documents laid end to end: the first 90 % of the characters go to train, the next 5 % to valid,
    the rest to test. A document that straddles a cut is cut at the nearest blank line (or between documents), so
    no text is in two splits.
    `split_documents(["aa\\n\\nbb", "cc"], (0.5, 0.25, 0.25)) -> {'train': ['aa'], 'valid': ['bb'], 'test': ['cc']}`
    """
    if len(fractions) != 3 or min(fractions) < 0 or abs(sum(fractions) - 1.0) > 1e-9:
        raise ValueError(f"fractions must be three non-negative numbers summing to 1, got {fractions}")
    total = sum(len(d) for d in docs)
    cuts = [total * fractions[0], total * (fractions[0] + fractions[1])]  # global character offsets
    out: Splits = {s: [] for s in SPLITS}
    split, offset = 0, 0
    for doc in docs:
        start = 0
        while split < 2 and offset + len(doc) > cuts[split]:
            cut = _nearest_cut(doc, int(cuts[split]) - offset, start)  # the global cut, inside this document
            if doc[start:cut].strip():
                out[SPLITS[split]].append(doc[start:cut].strip())
            start, split = cut, split + 1
        if doc[start:].strip():
            out[SPLITS[split]].append(doc[start:].strip())
        offset += len(doc)
    return out


def split_text(text: str, fractions: tuple[float, float, float] = (0.9, 0.05, 0.05)) -> tuple[str, str, str]:
    """One text cut into (train, valid, test) strings by `split_documents`: first 90 % / next 5 % / last 5 %."""
    parts = split_documents([text], fractions)
    return tuple("\n\n".join(parts[s]) for s in SPLITS)  # type: ignore[return-value]


def _merge(per_item: list[Splits]) -> Splits:
    return {s: [d for part in per_item for d in part[s]] for s in SPLITS}


# ---------------------------------------------------------------------------------------------- cleaning + loaders

def read_text(path: Path) -> str:
    """UTF-8 text with any BOM dropped and CRLF / CR line endings turned into LF."""
    return path.read_text(encoding="utf-8-sig").replace("\r\n", "\n").replace("\r", "\n")


_PG_START = re.compile(r"^\*\*\* ?START OF .*$", re.MULTILINE)
_PG_END = re.compile(r"^\*\*\* ?END OF .*$", re.MULTILINE)


def strip_gutenberg(text: str) -> str:
    """Keep only the text between the `*** START OF` and `*** END OF` lines of a Project Gutenberg file."""
    start, end = _PG_START.search(text), _PG_END.search(text)
    if start is None or end is None or end.start() < start.end():
        raise ValueError("not a Project Gutenberg text: no '*** START OF' ... '*** END OF' lines")
    return text[start.end():end.start()].strip()


def load_gutenberg(folder: Path) -> Splits:
    books = sorted(p for p in folder.glob("*.txt") if p.name != "PG_LICENSE.txt")
    return _merge([split_documents([strip_gutenberg(read_text(p))]) for p in books])  # 90/5/5 of each book


def load_tinyshakespeare(folder: Path) -> Splits:
    return split_documents([read_text(folder / "input.txt")])


# Lexis headnote markers. The README's regex `(HN\d+ )?LEdHN\[\w+\]( \[\w+\])?` finds the 307 bracketed anchors,
# but 506 bare "LEdHN" and 652 inline "HN7" markers (some glued to the next word: "HN4the") are left; this pattern
# takes all three. The echo "[7]" must repeat the anchor's own label (a backreference), so a quotation edit such as
# "[t]he" that follows survives.
_LEXIS_ANCHOR = re.compile(r"HN\d+ ?|LEdHN(\[(\w+)\]( ?\[\2\])?)? *")


def strip_lexis_anchors(text: str) -> str:
    """`'that HN2 LEdHN[2] [2] a defendant, LEdHN   [t]he' -> 'that a defendant, [t]he'`."""
    return _LEXIS_ANCHOR.sub("", text)


def load_scotus(folder: Path) -> Splits:
    names = split_items([p.name for p in (folder / "GinsburgCleaned").glob("*.txt")])
    return {s: [strip_lexis_anchors(read_text(folder / "GinsburgCleaned" / n)).strip() for n in names[s]]
            for s in SPLITS}


def medquad_text(path: Path) -> str:
    """One MedQuAD XML document as "Question\\nAnswer" pairs (whitespace collapsed), pairs separated by blank lines."""
    pairs = []
    for qa in ET.parse(path).getroot().iter("QAPair"):
        q, a = (" ".join((qa.findtext(tag) or "").split()) for tag in ("Question", "Answer"))
        if q and a:
            pairs.append(f"{q}\n{a}")
    return "\n\n".join(pairs)


def drop_repeats(splits: Splits) -> Splits:
    """Keep only the first copy of each document, looking in train, valid, test order, so none leaks across splits."""
    seen: set[str] = set()
    out: Splits = {s: [] for s in SPLITS}
    for s in SPLITS:
        for doc in splits[s]:
            if doc not in seen:
                seen.add(doc)
                out[s].append(doc)
    return out


def load_medquad(folder: Path) -> Splits:
    paths = split_items([p.relative_to(folder).as_posix() for p in folder.glob("*_QA/*.xml")])
    # Documents without an answered question are dropped (10), and so are exact copies: NIDDK 0000027, 37, 70 and 71
    # are one "Causes of Diabetes" text four times.
    return drop_repeats({s: [t for t in (medquad_text(folder / p) for p in paths[s]) if t] for s in SPLITS})


_CALCULATOR = re.compile(r"<<[^<>]*>>")


def gsm8k_text(line: str, strip_calculator: bool = True) -> str:
    """`{"question": q, "answer": a}` -> "Question: q\\nAnswer: a", dropping the `<<48/2=24>>` calculator notes."""
    item = json.loads(line)
    answer = _CALCULATOR.sub("", item["answer"]) if strip_calculator else item["answer"]
    return f"Question: {item['question']}\nAnswer: {answer}"


def load_gsm8k(folder: Path, strip_calculator: bool = True) -> Splits:
    train = read_text(folder / "train.jsonl").splitlines()
    test = read_text(folder / "test.jsonl").splitlines()
    # README: train = train.jsonl lines 0-4999 (about 2.8 MB), valid = lines 7000-7472; lines 5000-6999 are unused.
    parts = {"train": train[:5000], "valid": train[7000:], "test": test}
    return {s: [gsm8k_text(line, strip_calculator) for line in parts[s] if line.strip()] for s in SPLITS}


def load_python_stdlib(folder: Path) -> Splits:
    names = split_items([p.name for p in (folder / "Lib").glob("*.py")])
    return {s: [read_text(folder / "Lib" / n) for n in names[s]] for s in SPLITS}


def load_pydoc_topics(folder: Path) -> Splits:
    topics = [json.loads(line) for line in read_text(folder / "topics.jsonl").splitlines() if line.strip()]
    text = {t["topic"]: t["text"] for t in topics}
    names = split_items(list(text), every=10, valid=(), test=(9,))  # README: i % 10 == 9 -> test, no valid
    return {s: [text[n] for n in names[s]] for s in SPLITS}


def pydoc_topics_py_to_jsonl(source: bytes) -> bytes:
    """CPython's Lib/pydoc_data/topics.py -> the JSONL stored in shared/data (one sorted topic per line).

    The dict is read with `ast.literal_eval`, which evaluates literals only: the downloaded file is never run."""
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", None) == "topics":
            topics = ast.literal_eval(node.value)
            return "".join(json.dumps({"topic": k, "text": topics[k]}, ensure_ascii=False) + "\n"
                           for k in sorted(topics)).encode()
    raise ValueError("no `topics = {...}` assignment found in topics.py")


_WIKI_HEADING = re.compile(r"^ = [^=].* = $", re.MULTILINE)  # " = Title = " starts an article; " = = Section = = " not


def detokenize_wikitext(text: str) -> str:
    """Undo WikiText's in-word tokenisation: `"1 @,@ 000 km @-@ long" -> "1,000 km-long"`. `<unk>` stays."""
    return text.replace(" @-@ ", "-").replace(" @,@ ", ",").replace(" @.@ ", ".")


def load_wikitext2(folder: Path, detokenize: bool = False) -> Splits:
    out: Splits = {"train": []}
    for split, name in (("valid", "valid.txt"), ("test", "test.txt")):
        text = read_text(folder / name)
        starts = [m.start() for m in _WIKI_HEADING.finditer(text)] + [len(text)]
        articles = [text[a:b].strip() for a, b in itertools.pairwise(starts)]
        out[split] = [detokenize_wikitext(a) if detokenize else a for a in articles if a]
    return out


# ---------------------------------------------------------------------------------------------- the registry

_RAW = "https://raw.githubusercontent.com/"
_CPYTHON = _RAW + "python/cpython/v3.11.7/"  # a tag: CPython publishes releases as tags
_GSM8K = _RAW + "openai/grade-school-math/3101c7d5072418e28b9008a6636bde82a006892c/"
_GUTENBERG = {  # stored file -> GITenberg repo/commit/path: each book has its own repo
    "11-0.txt": "Alice-s-Adventures-in-Wonderland_11/7f18748e114b994d5d9454d5793581bc0b9cf9d7/11-0.txt",
    "120-0.txt": "Treasure-Island_120/46f38f7b63dbda34415ce29ef5548023a8ba8dda/120-0.txt",
    "1342-0.txt": "Pride-and-Prejudice_1342/81db45c9c48c592f0b77f01fc59e677ad0a5634e/1342-0.txt",
    "1400-0.txt": "Great-Expectations_1400/889db0e100928a957f469bf834c564d04065c8e6/1400-0.txt",
    "158-0.txt": "Emma_158/9943f6422b9246e7ad37625d6bd014b035fbfdea/158-0.txt",
    "1661.txt": "The-Adventures-of-Sherlock-Holmes_1661/7e5dd2703fbf503c004063e96ab7c61262375e5f/1661.txt",
    "2701-0.txt": "Moby-Dick--Or-The-Whale_2701/bdf1948e6cd00963730971e5624e764a35f238c3/2701-0.txt",
    "345.txt": "Dracula_345/5216d6ea255fbf8966426a160b68251b18f16907/345.txt",
    "76-0.txt": "Adventures-of-Huckleberry-Finn_76/8494afff3a26f95f37376f7a79a014cf818ccaba/76-0.txt",
    "84-0.txt": "Frankenstein_84/c98a483bd1f34e7366126b81bcedd1a6faee636e/84-0.txt",
    "98-0.txt": "A-Tale-of-Two-Cities_98/0f6111bc7237af7375295ec1754c2e57e19f67f1/98-0.txt",
    "PG_LICENSE.txt": "Pride-and-Prejudice_1342/81db45c9c48c592f0b77f01fc59e677ad0a5634e/LICENSE",
}


def _files(folder: str, prefix: str, urls: dict[str, str] | None = None) -> tuple[FileSpec, ...]:
    """FileSpecs from the checksum table at the end: URL = prefix + stored path, unless `urls` names it."""
    rows = [line.split("  ", 1) for line in _SHA256SUMS[folder].strip().splitlines()]
    return tuple(FileSpec(path, sha, (urls or {}).get(path) or prefix + quote(path)) for sha, path in rows)


_TOPICS_PY_SHA256 = "abaa56a64551d8eead1b19cbae3c6db443f99f0cab81df07bed3cb75c0db9346"  # 3.11.7 topics.py, 757,011 B


def _registry() -> dict[str, Corpus]:
    pydoc = _files("pydoc_topics", "")[0]
    pydoc = FileSpec(pydoc.path, pydoc.sha256, _CPYTHON + "Lib/pydoc_data/topics.py", _TOPICS_PY_SHA256,
                     pydoc_topics_py_to_jsonl)
    corpora = [
        Corpus("gutenberg", "gutenberg_novels", "base", "11 public-domain novels (Austen, Dickens, Melville, ...)",
               "Public domain (US); Project Gutenberg licence kept in the files", "GITenberg/* (one repo per book)",
               _files("gutenberg_novels", "", {k: _RAW + "GITenberg/" + v for k, v in _GUTENBERG.items()}),
               load_gutenberg),
        Corpus("tinyshakespeare", "tinyshakespeare", "domain", "Tiny Shakespeare: 40 k lines of drama and verse",
               "Public domain text (repo README says MIT)", "karpathy/char-rnn @6f9487a",
               _files("tinyshakespeare", _RAW + "karpathy/char-rnn/6f9487a6fe5b420b7ca9afb0d7c078e37c1d1b4e/"
                      "data/tinyshakespeare/"), load_tinyshakespeare),
        Corpus("scotus", "scotus_opinions", "domain", "111 US Supreme Court opinions by Justice Ginsburg (legal)",
               "Public domain (US government works); the repo has no licence file", "rosthalken/Supreme-Court @0310d65",
               _files("scotus_opinions", _RAW + "rosthalken/Supreme-Court/0310d65a47969e79f560f7c74207d11c3f8ff62d/"
                      "SupremeCourtCorpusFinalEncoded/"), load_scotus),
        Corpus("medquad", "medquad", "domain", "MedQuAD NIDDK + NINDS medical question-answer pairs",
               "CC BY 4.0 (Ben Abacha & Demner-Fushman 2019)", "abachaa/MedQuAD @577bd37",
               _files("medquad", _RAW + "abachaa/MedQuAD/577bd37b96c02d1833b2c9eed2de9f96964e96cb/"), load_medquad),
        Corpus("gsm8k", "gsm8k", "domain", "GSM8K grade-school maths word problems with worked answers",
               "MIT (OpenAI)", "openai/grade-school-math @3101c7d",
               _files("gsm8k", _GSM8K + "grade_school_math/data/", {"LICENSE": _GSM8K + "LICENSE"}),
               load_gsm8k, options={"strip_calculator": True}),
        Corpus("python_stdlib", "python_stdlib_subset", "domain", "139 CPython 3.11.7 standard-library modules (code)",
               "PSF-2.0", "python/cpython v3.11.7 Lib/",
               _files("python_stdlib_subset", _CPYTHON, {"LICENSE.txt": _CPYTHON + "LICENSE"}),
               load_python_stdlib),
        Corpus("pydoc_topics", "pydoc_topics", "domain", "Python language reference help topics (tech docs)",
               "PSF-2.0", "python/cpython v3.11.7 Lib/pydoc_data/topics.py", (pydoc,), load_pydoc_topics,
               splits=("train", "test")),
        Corpus("wikitext2", "wikitext2", "probe", "WikiText-2 valid + test (Wikipedia articles, tokenized)",
               "CC BY-SA 3.0 (Wikipedia contributors; Merity et al. 2016)", "pytorch/examples @77f55b9",
               _files("wikitext2", _RAW + "pytorch/examples/77f55b912142e11fcfdf5b530231fb9c52f181e8/"
                      "word_language_model/data/wikitext-2/"), load_wikitext2, splits=("valid", "test"),
               options={"detokenize": False}),
    ]
    return {c.name: c for c in corpora}


# ---------------------------------------------------------------------------------------------- checksums
# sha256 of every stored file, in `minimac/sha256sums/<folder>.sha256`, one line as `sha256sum PATH` prints it inside
# the corpus folder (so `sha256sum -c` checks a mirror by hand). Generated from the project's shared/data, whose files
# are byte-for-byte the upstream files (pydoc topics: the JSONL, see FileSpec).
_SUMS_DIR = Path(__file__).parent / "sha256sums"
_SHA256SUMS = {f.stem: f.read_text() for f in sorted(_SUMS_DIR.glob("*.sha256"))}

CORPORA: dict[str, Corpus] = _registry()  # built last: the registry reads the checksum table above
