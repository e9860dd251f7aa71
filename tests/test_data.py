"""Tests for minimac/corpora.py and minimac/data.py: registry, cleaning, splits, download/mirror, packing, batches.

The real corpora come from the offline mirror: $MINIMAC_DATA, else ../shared/data beside the repository. Tests that
need it are skipped, with the reason, when neither exists. Downloads are tested against a local http.server.
"""
import dataclasses
import functools
import hashlib
import http.server
import os
import re
import shutil
import socket
import sys
import sysconfig
import threading
from pathlib import Path

import numpy as np
import pytest

from minimac import data
from minimac.corpora import (
    CORPORA,
    DOMAIN_ORDER,
    PROBES,
    SPLITS,
    pydoc_topics_py_to_jsonl,
    split_documents,
    split_items,
    split_text,
    strip_gutenberg,
    strip_lexis_anchors,
)
from minimac.data import (
    DEFAULT_DOMAINS,
    Batcher,
    ChecksumError,
    DownloadError,
    batches,
    corpus_text,
    encode_documents,
    fetch,
    list_corpora,
    load_corpus,
    pack_tokens,
)

MIRROR = Path(os.environ.get("MINIMAC_DATA") or Path(__file__).resolve().parents[1].parent / "shared" / "data")
needs_mirror = pytest.mark.skipif(not MIRROR.is_dir(), reason=f"no corpora mirror: set MINIMAC_DATA (tried {MIRROR})")


class ByteStub:
    """A stand-in tokenizer: UTF-8 bytes shifted by one, so id 0 is free for <|endoftext|>."""
    eot_id = 0

    def encode(self, text):
        return [b + 1 for b in text.encode()]


@pytest.fixture(scope="module")
def corpora():
    """Every split of every registry corpus, loaded once from the mirror: {name: {split: [docs]}}."""
    if not MIRROR.is_dir():
        pytest.skip(f"no corpora mirror: set MINIMAC_DATA (tried {MIRROR})")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MINIMAC_DATA", str(MIRROR))
        return {name: {s: load_corpus(name, s) if s in c.splits else [] for s in SPLITS} for name, c in CORPORA.items()}


# ------------------------------------------------------------------------------------------------ registry

def test_registry_names_order_and_pins():
    assert list_corpora() == ["default", *CORPORA]
    assert set(DOMAIN_ORDER) | set(PROBES) <= set(CORPORA) and DOMAIN_ORDER[0] == "gutenberg"
    for c in CORPORA.values():
        assert c.licence and c.files
        for f in c.files:
            assert re.fullmatch(r"[0-9a-f]{64}", f.sha256), f
            # pinned: a 40-hex commit or the CPython release tag, never a branch
            assert re.match(r"https://raw\.githubusercontent\.com/[^/]+/[^/]+/([0-9a-f]{40}|v3\.11\.7)/", f.url), f.url


@needs_mirror
@pytest.mark.parametrize("name", list(CORPORA))
def test_registry_lists_every_mirror_file(name):
    folder = MIRROR / CORPORA[name].folder
    stored = {p.relative_to(folder).as_posix() for p in folder.rglob("*")
              if p.is_file() and p.name not in ("PROVENANCE.md", "MANIFEST.tsv")}
    assert stored == {f.path for f in CORPORA[name].files}
    assert fetch(name, mirror=MIRROR) == folder  # every sha256 matches


# ------------------------------------------------------------------------------------------------ splits

@pytest.mark.parametrize("name", list(CORPORA))
def test_splits_disjoint_and_deterministic(corpora, name):
    splits = corpora[name]
    for a, b in (("train", "valid"), ("train", "test"), ("valid", "test")):
        assert not set(splits[a]) & set(splits[b]), f"{name}: a document is in both {a} and {b}"
    reloaded = CORPORA[name].loader(MIRROR / CORPORA[name].folder, **CORPORA[name].options)
    assert {s: reloaded[s] for s in CORPORA[name].splits} == {s: splits[s] for s in CORPORA[name].splits}


# README table: documents per split (None: contiguous text) and characters in millions (bytes for ASCII text).
README_SIZES = {
    "gutenberg": (None, (6.78, 0.38, 0.38)),
    "tinyshakespeare": (None, (1.00, 0.06, 0.06)),
    "scotus": ((101, 5, 5), (2.45, 0.16, 0.18)),
    "medquad": ((392, 21, 21), (2.47, 0.10, 0.12)),  # README's chars less two copies of a train document
    "gsm8k": ((5000, 473, 1319), None),
    "python_stdlib": ((126, 7, 6), (2.71, 0.12, 0.11)),
    "pydoc_topics": ((71, 0, 8), None),
}


@pytest.mark.parametrize("name", list(README_SIZES))
def test_split_sizes_match_readme(corpora, name):
    counts, megachars = README_SIZES[name]
    if counts:  # MedQuAD loses 10 empty documents and 3 copies; i % 10 == 9 over 79 pydoc topics gives 7, not 8
        got = [len(corpora[name][s]) for s in SPLITS]
        assert all(abs(g - c) <= max(2, 0.05 * c) for g, c in zip(got, counts)), (got, counts)
    if megachars:
        got = [sum(map(len, corpora[name][s])) / 1e6 for s in SPLITS]
        np.testing.assert_allclose(got, megachars, rtol=0.06, atol=0.01)


def test_wikitext2_is_a_probe(corpora):
    assert not corpora["wikitext2"]["train"] and len(corpora["wikitext2"]["test"]) >= 60
    assert all(doc.startswith("= ") for doc in corpora["wikitext2"]["test"])
    with pytest.raises(ValueError, match="no 'train' split.*train on 'valid'"):
        load_corpus("wikitext2", "train")


# ------------------------------------------------------------------------------------------------ cleaning

def test_gutenberg_clean(corpora):
    text = "".join(d for s in SPLITS for d in corpora["gutenberg"][s])
    for bad in ("*** START OF", "*** END OF", "\ufeff", "\r", "Project Gutenberg License"):
        assert bad not in text
    assert len(corpora["gutenberg"]["train"]) == 11  # one piece per book per split
    with pytest.raises(ValueError, match="not a Project Gutenberg text"):
        strip_gutenberg("no markers here")


def test_gsm8k_format_and_calculator_notes(corpora):
    for doc in corpora["gsm8k"]["test"]:
        assert doc.startswith("Question: ") and "\nAnswer: " in doc and "<<" not in doc and "#### " in doc
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MINIMAC_DATA", str(MIRROR))
        raw = load_corpus("gsm8k", "test", strip_calculator=False)
        with pytest.raises(ValueError, match="takes options.*unknown \\['detokenize'\\]"):
            load_corpus("gsm8k", "test", detokenize=True)
    assert sum("<<" in d for d in raw) > 1000


def test_medquad_question_answer_format(corpora):
    for doc in corpora["medquad"]["valid"]:
        for pair in doc.split("\n\n"):
            question, answer = pair.split("\n")  # exactly one question line and one answer line
            assert question and answer and "  " not in answer and "\t" not in answer


def test_scotus_anchors_stripped(corpora):
    text = "".join(corpora["scotus"]["train"])
    assert "LEdHN" not in text and "[t]he" in text  # bracketed quotation edits survive
    assert re.search(r"HN\d", text) is None
    assert strip_lexis_anchors("that HN2 LEdHN[2] [2] a defendant, LEdHN[4][4] [t]he") == "that a defendant, [t]he"
    assert strip_lexis_anchors("so.LEdHN    LEdHN   HN11 The") == "so.The"


@needs_mirror
def test_wikitext_detokenize(monkeypatch):
    monkeypatch.setenv("MINIMAC_DATA", str(MIRROR))
    raw, clean = "".join(load_corpus("wikitext2", "valid")), "".join(load_corpus("wikitext2", "valid", detokenize=True))
    assert raw.count(" @-@ ") > 100 and " @,@ " in raw and "<unk>" in raw
    assert "@-@" not in clean and "@,@" not in clean and "@.@" not in clean and "<unk>" in clean


@pytest.mark.skipif(sys.version_info[:3] != (3, 11, 7), reason="the pinned topics.py is CPython 3.11.7's")
def test_pydoc_topics_upstream_conversion(offline, serve, monkeypatch):
    """The upstream path: download topics.py (here from a local server), check it, convert to JSONL, check again."""
    source = Path(sysconfig.get_paths()["stdlib"]) / "pydoc_data" / "topics.py"
    spec = CORPORA["pydoc_topics"].files[0]
    assert hashlib.sha256(pydoc_topics_py_to_jsonl(source.read_bytes())).hexdigest() == spec.sha256
    (offline / "upstream").mkdir()
    shutil.copy(source, offline / "upstream" / "topics.py")
    base_url, _ = serve(offline / "upstream")
    local = dataclasses.replace(spec, url=f"{base_url}/topics.py")
    monkeypatch.setitem(CORPORA, "pydoc_topics", dataclasses.replace(CORPORA["pydoc_topics"], files=(local,)))
    folder = fetch("pydoc_topics", progress=False)
    assert [p.name for p in folder.iterdir()] == ["topics.jsonl"]
    assert len(load_corpus("pydoc_topics", "test")) == 7


# ------------------------------------------------------------------------------------------------ embedded default

def test_default_corpus_deterministic_two_domains():
    first = {(d, s): load_corpus("default", s, domain=d) for d in DEFAULT_DOMAINS for s in SPLITS}
    data._default_domain.cache_clear()
    second = {(d, s): load_corpus("default", s, domain=d) for d in DEFAULT_DOMAINS for s in SPLITS}
    assert first == second and len(DEFAULT_DOMAINS) >= 2
    assert all(first[k] for k in first), "every split of every domain is non-empty"
    for d in DEFAULT_DOMAINS:
        assert not set(first[d, "train"]) & set(first[d, "test"])
    code, docs = corpus_text("default", "train", domain="code"), corpus_text("default", "train", domain="docs")
    assert code.count("\ndef ") > 100 and docs.count("\ndef ") < code.count("\ndef ") / 5  # clearly different
    assert data.default_corpus("valid") == {d: first[d, "valid"] for d in DEFAULT_DOMAINS}
    load_corpus("default", "test", domain="code").clear()  # callers get a copy: the cache stays intact
    assert load_corpus("default", "test", domain="code") == first["code", "test"]


def test_load_corpus_errors():
    with pytest.raises(ValueError, match="unknown corpus 'nope'.*'gutenberg'"):
        load_corpus("nope")
    with pytest.raises(ValueError, match="unknown corpus 'nope'"):
        fetch("nope")
    with pytest.raises(ValueError, match="unknown split 'dev'"):
        load_corpus("default", "dev", domain="docs")
    with pytest.raises(ValueError, match="default corpus needs domain="):
        load_corpus("default", "train")
    with pytest.raises(ValueError, match="domain= is only for the 'default' corpus"):
        load_corpus("gsm8k", "train", domain="docs")


# ------------------------------------------------------------------------------------------------ mirror and download

@pytest.fixture
def offline(monkeypatch, tmp_path):
    """No mirror, no download URL, an empty cache."""
    for var in ("MINIMAC_DATA", "MINIMAC_DATA_URL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("MINIMAC_CACHE", str(tmp_path / "cache"))
    return tmp_path


@pytest.fixture
def serve():
    """serve(folder) -> base URL of a threaded http.server on 127.0.0.1; requests are counted in .paths."""
    servers = []

    def start(folder):
        class Handler(http.server.SimpleHTTPRequestHandler):
            def log_message(self, *args):  # keep pytest's output clean
                pass

            def do_GET(self):
                server.paths.append(self.path)
                super().do_GET()

        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(folder)))
        server.paths = []
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_port}", server

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def _small_mirror(tmp_path, corrupt=False):
    """A copy of the mirror's tinyshakespeare and wikitext2 folders (optionally with a corrupted input.txt)."""
    root = tmp_path / "mirror"
    for name in ("tinyshakespeare", "wikitext2"):
        shutil.copytree(MIRROR / CORPORA[name].folder, root / CORPORA[name].folder)
    if corrupt:
        path = root / "tinyshakespeare" / "input.txt"
        path.chmod(0o644)
        path.write_bytes(path.read_bytes().replace(b"First Citizen", b"Second Citizen", 1))
    return root


@needs_mirror
def test_download_from_local_server(offline, serve):
    base_url, server = serve(_small_mirror(offline))
    folder = fetch("wikitext2", base_url=base_url, progress=False)
    assert folder == offline / "cache" / "data" / "wikitext2"
    assert sorted(server.paths) == ["/wikitext2/README", "/wikitext2/test.txt", "/wikitext2/valid.txt"]
    assert fetch("wikitext2", base_url=base_url, progress=False) == folder and len(server.paths) == 3  # cached
    (folder / "README").write_text("tampered")  # a corrupted cached file is fetched again
    fetch("wikitext2", base_url=base_url, progress=False)
    assert server.paths[3:] == ["/wikitext2/README"] and (folder / "README").read_bytes().startswith(b"This")


@needs_mirror
def test_load_corpus_downloads_through_env(offline, serve, monkeypatch):
    base_url, _ = serve(_small_mirror(offline))
    monkeypatch.setenv("MINIMAC_DATA_URL", base_url)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MINIMAC_DATA", str(MIRROR))
        expected = load_corpus("tinyshakespeare", "valid")
    assert load_corpus("tinyshakespeare", "valid") == expected
    assert (offline / "cache" / "data" / "tinyshakespeare" / "input.txt").is_file()


@needs_mirror
def test_download_checksum_mismatch_removes_file(offline, serve):
    root = _small_mirror(offline, corrupt=True)
    base_url, _ = serve(root)
    expected = CORPORA["tinyshakespeare"].files[0].sha256
    actual = hashlib.sha256((root / "tinyshakespeare" / "input.txt").read_bytes()).hexdigest()
    with pytest.raises(ChecksumError, match=f"input.txt.*expected sha256 {expected}, got {actual}.*removed"):
        fetch("tinyshakespeare", base_url=base_url, progress=False)
    assert list((offline / "cache" / "data" / "tinyshakespeare").iterdir()) == []  # neither the file nor a .part


def test_unreachable_server_without_mirror(offline):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(DownloadError, match="could not download http://127.0.0.1.*MINIMAC_DATA"):
        fetch("tinyshakespeare", base_url=f"http://127.0.0.1:{port}", progress=False)


def test_missing_file_on_server(offline, serve):
    base_url, _ = serve(offline)  # an empty folder: every request is a 404
    with pytest.raises(DownloadError, match="HTTP 404.*MINIMAC_DATA"):
        fetch("tinyshakespeare", base_url=base_url, progress=False)


@needs_mirror
def test_mirror_errors(offline):
    root = _small_mirror(offline, corrupt=True)
    path = root / "tinyshakespeare" / "input.txt"
    with pytest.raises(ChecksumError, match=f"{re.escape(str(path))}.*offline mirror.*expected sha256 [0-9a-f]{{64}}"):
        fetch("tinyshakespeare", mirror=root)
    assert path.is_file()  # a mirror is the user's: never deleted
    with pytest.raises(FileNotFoundError, match="has no folder gsm8k/"):
        fetch("gsm8k", mirror=root)
    (root / "wikitext2" / "README").unlink()
    with pytest.raises(FileNotFoundError, match="lacks .*README"):
        fetch("wikitext2", mirror=root)


# ------------------------------------------------------------------------------------------------ split helpers

def test_split_helpers():
    assert split_items(["d", "c", "b", "a"], every=4, valid=(2,), test=(3,)) == {
        "train": ["a", "b"], "valid": ["c"], "test": ["d"]}
    assert split_documents(["aa\n\nbb", "cc"], (0.5, 0.25, 0.25)) == {"train": ["aa"], "valid": ["bb"], "test": ["cc"]}
    text = "\n\n".join(f"paragraph {i}" for i in range(100))
    train, valid, test = split_text(text)
    assert f"{train}\n\n{valid}\n\n{test}" == text  # every paragraph once, in order, cut at blank lines
    assert 0.85 < len(train) / len(text) < 0.95 and valid and test
    with pytest.raises(ValueError, match="fractions must be three non-negative numbers summing to 1"):
        split_text(text, (0.9, 0.2, 0.1))


# ------------------------------------------------------------------------------------------------ packing and batches

def test_pack_tokens_separators():
    packed = pack_tokens([[5, 6], [], [7]], eot_id=0)
    assert packed.dtype == np.int32 and packed.tolist() == [0, 5, 6, 0, 7]
    assert pack_tokens([], eot_id=0).shape == (0,)
    ids = encode_documents(["hi", "yo"], ByteStub())
    assert ids.tolist() == [0, ord("h") + 1, ord("i") + 1, 0, ord("y") + 1, ord("o") + 1]
    with pytest.raises(TypeError, match="eot_id must be a non-negative int"):
        pack_tokens([[1]], eot_id=None)
    with pytest.raises(ValueError, match="document 1: token ids must be"):
        pack_tokens([[1], [-2]], eot_id=0)
    with pytest.raises(TypeError, match="not one str"):
        encode_documents("a whole text", ByteStub())
    with pytest.raises(TypeError, match="needs .encode\\(str\\) -> list\\[int\\] and .eot_id"):
        encode_documents(["a"], object())


def test_batches_shapes_and_targets():
    tokens = np.arange(1, 202)  # 201 tokens: 20 windows of 10 (+1)
    batcher = Batcher(tokens, batch_size=4, seq_len=10, seed=1)
    epoch = list(batcher)
    assert len(batcher) == 5 and len(epoch) == 5
    for b in epoch:
        assert b.shape == (4, 11) and b.dtype == np.int32
        np.testing.assert_array_equal(b[:, 1:] - b[:, :-1], 1)  # y is x shifted by one, within one window
    targets = np.sort(np.concatenate([b[:, 1:].ravel() for b in epoch]))
    np.testing.assert_array_equal(targets, tokens[1:])  # every token but the first is a target exactly once
    assert [b.tolist() for b in batcher.epoch(0)] == [b.tolist() for b in epoch]  # same seed, same epoch
    assert [b.tolist() for b in batcher] != [b.tolist() for b in epoch]  # the next epoch reshuffles
    np.testing.assert_array_equal(batcher(7), list(batcher.epoch(1))[2])  # step 7 = epoch 1, batch 2
    ordered = list(batches(tokens, 4, 10, shuffle=False, epochs=2))
    assert len(ordered) == 10 and ordered[0][0].tolist() == list(range(1, 12))
    forever = batches(tokens, 4, 10, epochs=None)
    assert len([next(forever) for _ in range(12)]) == 12


def test_batches_too_short():
    with pytest.raises(ValueError, match="need at least 33 tokens for one batch of 2 x 16.*has 10"):
        batches(np.arange(10), batch_size=2, seq_len=16)
    with pytest.raises(ValueError, match="need at least 33 tokens.*has 0"):
        Batcher(encode_documents([], ByteStub()), batch_size=2, seq_len=16)
    with pytest.raises(ValueError, match="batch_size must be a positive int"):
        Batcher(np.arange(100), batch_size=0, seq_len=4)
    with pytest.raises(ValueError, match="tokens must be a 1-D array of integer ids"):
        Batcher(np.zeros((10, 10)), batch_size=1, seq_len=4)


def test_real_corpus_to_batches(corpora):
    tokens = encode_documents(corpora["tinyshakespeare"]["valid"], ByteStub())
    b = next(batches(tokens, batch_size=8, seq_len=32, seed=0))
    assert b.shape == (8, 33) and b.max() <= 256
