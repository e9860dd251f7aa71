"""Checkpoints: exact round trip, atomic writes, and clear errors for every broken file."""
import json
from pathlib import Path

import numpy as np
import pytest
from tinygrad import Tensor
from tinygrad.nn.state import safe_save

from minimac import checkpoint, files
from minimac.checkpoint import load, save
from minimac.model import ModelConfig, Transformer

SMALL = {"vocab_size": 320, "d_model": 32, "num_layers": 2, "num_query_heads": 4, "num_kv_heads": 2, "d_ff": 64,
         "max_seq_len": 16}
TOKENS = np.random.default_rng(0).integers(0, 320, (2, 8))


@pytest.fixture(scope="module")
def model():
    Tensor.manual_seed(3)
    return Transformer(ModelConfig(**SMALL))


@pytest.fixture(scope="module")
def saved(model, tmp_path_factory):
    d = tmp_path_factory.mktemp("ckpt")
    save(model, d)
    return d


def test_round_trip_reproduces_logits_exactly(model, saved):
    loaded = load(saved)
    assert loaded.config == model.config
    np.testing.assert_array_equal(loaded(TOKENS).numpy(), model(TOKENS).numpy())
    assert loaded.lm_head.weight is loaded.token_embedding.weight
    assert sorted(p.name for p in saved.iterdir()) == ["config.json", "model.safetensors"]  # no temp files left
    assert "lm_head.weight" not in files.read_safetensors(saved / "model.safetensors")  # tied: stored once
    assert json.loads((saved / "config.json").read_text())["format_version"] == checkpoint.FORMAT_VERSION


def test_untied_round_trip_and_overwrite(tmp_path):
    Tensor.manual_seed(4)
    first, second = (Transformer(ModelConfig(**SMALL, tie_embeddings=False)) for _ in range(2))
    (tmp_path / "tokenizer").mkdir()
    save(first, tmp_path)
    save(second, tmp_path)  # overwriting an existing checkpoint leaves other files alone
    loaded = checkpoint.load(tmp_path)
    np.testing.assert_array_equal(loaded(TOKENS).numpy(), second(TOKENS).numpy())
    assert (tmp_path / "tokenizer").is_dir()


def test_a_failed_save_keeps_the_old_checkpoint(model, tmp_path, monkeypatch):
    save(model, tmp_path)
    before = (tmp_path / "model.safetensors").read_bytes()

    def boom(path, tensors, metadata=None):
        Path(path).write_bytes(b"half")
        raise OSError("disk full")
    monkeypatch.setattr(checkpoint, "write_safetensors", boom)
    with pytest.raises(OSError, match="disk full"):
        save(model, tmp_path)
    assert (tmp_path / "model.safetensors").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", "model.safetensors"]


def test_atomic_write_makes_whole_files_that_others_can_read(tmp_path):
    files.atomic_write(tmp_path / "a.txt", "hello")
    files.atomic_write(tmp_path / "b.bin", lambda tmp: Path(tmp).write_bytes(b"\x00\x01"))
    assert (tmp_path / "a.txt").read_text() == "hello" and (tmp_path / "b.bin").read_bytes() == b"\x00\x01"
    assert {(p.stat().st_mode & 0o777) for p in tmp_path.iterdir()} == {0o644}   # not mkstemp's 0600

    def interrupted(tmp):
        Path(tmp).write_text("half")
        raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        files.atomic_write(tmp_path / "a.txt", interrupted)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "b.bin"] and (tmp_path / "a.txt").read_text() == "hello"


def copy_checkpoint(src, dst):
    dst.mkdir(exist_ok=True)
    for name in ("config.json", "model.safetensors"):
        (dst / name).write_bytes((src / name).read_bytes())
    return dst


def test_missing_directory_and_files(saved, tmp_path):
    with pytest.raises(FileNotFoundError, match="checkpoint directory .*nowhere' does not exist"):
        checkpoint.load(tmp_path / "nowhere")
    d = copy_checkpoint(saved, tmp_path / "a")
    (d / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="weights file .*model.safetensors' is missing"):
        checkpoint.load(d)
    d = copy_checkpoint(saved, tmp_path / "b")
    (d / "config.json").unlink()
    with pytest.raises(FileNotFoundError, match="config file .*config.json' is missing"):
        checkpoint.load(d)


def test_truncated_or_corrupt_weights(saved, tmp_path):
    d = copy_checkpoint(saved, tmp_path / "t")
    raw = (d / "model.safetensors").read_bytes()
    (d / "model.safetensors").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ValueError, match="model.safetensors' is truncated or corrupt: .* ends at byte"):
        checkpoint.load(d)
    (d / "model.safetensors").write_bytes(raw[:5])
    with pytest.raises(ValueError, match="truncated or corrupt: only 5 bytes"):
        checkpoint.load(d)
    (d / "model.safetensors").write_bytes((12).to_bytes(8, "little") + b"not json!!!!" + raw[100:])
    with pytest.raises(ValueError, match="truncated or corrupt: unreadable header"):
        checkpoint.load(d)


def test_weights_that_do_not_fit_the_config(saved, tmp_path):
    d = copy_checkpoint(saved, tmp_path / "shape")
    blob = json.loads((d / "config.json").read_text())
    blob["model"]["d_ff"] = 96
    (d / "config.json").write_text(json.dumps(blob))
    with pytest.raises(ValueError, match=r"does not match config.json: layers.0.feed_forward.w1.weight has shape "
                                         r"\(64, 32\), the config needs \(96, 32\)"):
        checkpoint.load(d)
    d = copy_checkpoint(saved, tmp_path / "key")
    weights = files.read_safetensors(d / "model.safetensors")
    del weights["norm.weight"]
    safe_save({k: Tensor(v) for k, v in weights.items()}, str(d / "model.safetensors"))
    with pytest.raises(ValueError, match="model.safetensors' does not match config.json: missing norm.weight"):
        checkpoint.load(d)


@pytest.mark.parametrize("text, message", [
    ("{not json", "config file .*config.json' is not valid JSON"),
    ('{"format_version": 99, "model": {}}', "has format_version 99; this minimac reads version 1"),
    ('{"format_version": 1}', 'has no "model" section'),
    ('{"format_version": 1, "model": {"d_model": 30}}', r"config.json': ModelConfig.d_model \(30\) must be divisible"),
])
def test_bad_config_files(saved, tmp_path, text, message):
    d = copy_checkpoint(saved, tmp_path / "cfg")
    (d / "config.json").write_text(text)
    with pytest.raises(ValueError, match=message):
        checkpoint.load(d)


def test_write_safetensors_matches_tinygrads_reader_and_ours(tmp_path):
    from tinygrad.nn.state import safe_load, safe_load_metadata

    arrays = {"a": np.arange(6, dtype=np.float32).reshape(2, 3), "b": np.array([7, -1], np.int32),
              "d": Tensor([1.5, 2.5])}
    path = tmp_path / "x.safetensors"
    files.write_safetensors(path, arrays, {"note": "hi"})
    ours, theirs = files.read_safetensors(path), safe_load(str(path))
    for k, v in arrays.items():
        want = v.numpy() if isinstance(v, Tensor) else v
        np.testing.assert_array_equal(ours[k], want)
        np.testing.assert_array_equal(theirs[k].numpy(), want)
    assert safe_load_metadata(str(path))[2]["__metadata__"] == {"note": "hi"}
    with pytest.raises(TypeError, match="'e'.*float64"):
        files.write_safetensors(path, {"e": np.zeros(2)})
