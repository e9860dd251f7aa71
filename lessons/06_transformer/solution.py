"""Lesson 06 reference solution: assemble the transformer, count it, sample from it, save it.

README.md gives the stages; peek at minimac/model.py, minimac/generate.py and minimac/checkpoint.py if stuck.
The numpy helpers at the top are given: they are lessons 02-05 (float64, weights stored (out, in), so x @ W.T).
`weights` below is a dict of numpy arrays under minimac's state-dict names, e.g. "layers.0.attention.q_proj.weight";
`config` is a minimac.model.ModelConfig.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np
from tinygrad.nn.state import safe_load, safe_save

from minimac.model import ModelConfig, Transformer


# ---- given: the parts from lessons 02-05 -----------------------------------------------------------------------------
def rms_norm(x: np.ndarray, weight: np.ndarray, eps: float) -> np.ndarray:
    return x / np.sqrt((x ** 2).mean(-1, keepdims=True) + eps) * weight


def softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def apply_rope(x: np.ndarray, base: float = 10000.0) -> np.ndarray:
    """Half-split RoPE on x (..., T, hd) at positions 0 .. T - 1."""
    T, hd = x.shape[-2], x.shape[-1]
    angles = np.outer(np.arange(T), base ** (-np.arange(0, hd, 2) / hd))
    cos, sin = np.cos(np.concatenate([angles, angles], -1)), np.sin(np.concatenate([angles, angles], -1))
    return x * cos + np.concatenate([-x[..., hd // 2:], x[..., :hd // 2]], axis=-1) * sin


def attention(x: np.ndarray, wq, wk, wv, wo, num_query_heads: int, num_kv_heads: int, base: float) -> np.ndarray:
    """Causal grouped-query attention (lesson 04), x (B, T, d) -> (B, T, d)."""
    B, T, _ = x.shape
    hd = wq.shape[0] // num_query_heads
    heads = lambda y, H: y.reshape(B, T, H, hd).transpose(0, 2, 1, 3)  # (B, H, T, hd)
    q = apply_rope(heads(x @ wq.T, num_query_heads), base)
    k = np.repeat(apply_rope(heads(x @ wk.T, num_kv_heads), base), num_query_heads // num_kv_heads, axis=1)
    v = np.repeat(heads(x @ wv.T, num_kv_heads), num_query_heads // num_kv_heads, axis=1)
    scores = np.where(np.tril(np.ones((T, T), dtype=bool)), q @ k.transpose(0, 1, 3, 2) / np.sqrt(hd), -np.inf)
    return (softmax(scores) @ v).transpose(0, 2, 1, 3).reshape(B, T, -1) @ wo.T


def swiglu(x: np.ndarray, w1, w2, w3) -> np.ndarray:
    """SwiGLU (lesson 05): w2(silu(w1 x) * w3 x)."""
    gate = x @ w1.T
    return (gate / (1.0 + np.exp(-gate)) * (x @ w3.T)) @ w2.T


# ---- stage 1 ---------------------------------------------------------------------------------------------------------
def param_count(vocab_size: int, d_model: int, num_layers: int, num_query_heads: int, num_kv_heads: int, d_ff: int,
                tie_embeddings: bool = True) -> int:
    """V*d + L*(2d^2 + 2d*(Hkv*hd) + 3*d*d_ff + 2d) + d, plus V*d for an untied head."""
    d, kv = d_model, num_kv_heads * (d_model // num_query_heads)
    per_block = 2 * d * d + 2 * d * kv + 3 * d * d_ff + 2 * d  # q, o; k, v; w1, w2, w3; two norm gains
    head = 0 if tie_embeddings else vocab_size * d
    return vocab_size * d + num_layers * per_block + d + head


# ---- stage 2 ---------------------------------------------------------------------------------------------------------
def block_forward(x: np.ndarray, weights: dict[str, np.ndarray], layer: int, config: ModelConfig) -> np.ndarray:
    """One pre-norm block on the residual stream x (B, T, d) -> (B, T, d)."""
    def w(name):
        return weights[f"layers.{layer}.{name}.weight"]

    c = config
    h = x + attention(rms_norm(x, w("attention_norm"), c.norm_eps), w("attention.q_proj"), w("attention.k_proj"),
                      w("attention.v_proj"), w("attention.o_proj"), c.num_query_heads, c.num_kv_heads, c.rope_base)
    return h + swiglu(rms_norm(h, w("ffn_norm"), c.norm_eps), w("feed_forward.w1"), w("feed_forward.w2"),
                      w("feed_forward.w3"))


def transformer_forward(tokens: np.ndarray, weights: dict[str, np.ndarray], config: ModelConfig) -> np.ndarray:
    """tokens (B, T) int -> logits (B, T, V)."""
    embedding = weights["token_embedding.weight"]                  # (V, d)
    x = embedding[np.asarray(tokens)]                              # (B, T, d): one row per token id
    for layer in range(config.num_layers):
        x = block_forward(x, weights, layer, config)
    head = embedding if config.tie_embeddings else weights["lm_head.weight"]
    return rms_norm(x, weights["norm.weight"], config.norm_eps) @ head.T  # (B, T, V)


# ---- stage 3 ---------------------------------------------------------------------------------------------------------
def process_logits(logits: np.ndarray, temperature: float = 1.0, top_k: int | None = None,
                   top_p: float | None = None) -> np.ndarray:
    """Temperature, then top-k, then top-p; removed tokens become -inf."""
    x = np.asarray(logits, dtype=np.float64).copy()
    if temperature > 0:
        x = x / temperature
    if top_k is not None and top_k < x.size:
        kth = np.sort(x)[-top_k]
        x[x < kth] = -np.inf  # ties with the k-th are kept
    if top_p is not None and top_p < 1.0:
        order = np.argsort(-x, kind="stable")
        probs = softmax(x[order])
        above = np.cumsum(probs) - probs  # probability of the tokens ranked above each one
        x[order[above > top_p]] = -np.inf
    return x


def sample_next(logits: np.ndarray, temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None,
                rng: np.random.Generator | None = None) -> int:
    """argmax at temperature 0, else a draw from the filtered distribution."""
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0 (0 = greedy), got {temperature}")
    x = process_logits(logits, temperature, top_k, top_p)
    if temperature == 0:
        return int(np.argmax(x))
    probs = softmax(x)  # exp(-inf) = 0: filtered tokens cannot be drawn
    return int((rng or np.random.default_rng()).choice(x.size, p=probs))


# ---- stage 4 ---------------------------------------------------------------------------------------------------------
def generate(model: Transformer, prompt_ids: list[int], max_new_tokens: int, temperature: float = 0.0,
             top_k: int | None = None, top_p: float | None = None, seed: int | None = None) -> list[int]:
    """New token ids after prompt_ids, recomputing the whole sequence at every step (no KV cache)."""
    rng = np.random.default_rng(seed)
    ids = list(prompt_ids)
    for _ in range(max_new_tokens):
        logits = model([ids[-model.config.max_seq_len:]]).numpy()[0, -1]  # (V,) at the last position
        ids.append(sample_next(logits, temperature, top_k, top_p, rng))
    return ids[len(prompt_ids):]


# ---- stage 5 ---------------------------------------------------------------------------------------------------------
def _atomic_write(path: Path, write) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)  # atomic: readers see the old file or the new one, never half of one
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_checkpoint(model: Transformer, directory: str | os.PathLike) -> None:
    """model.safetensors + config.json, each written atomically."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    state = dict(model.state_dict())
    if model.config.tie_embeddings:
        del state["lm_head.weight"]  # the same tensor as token_embedding.weight: store it once
    config = {"format_version": 1, "model": model.config.to_dict()}
    _atomic_write(d / "model.safetensors", lambda tmp: safe_save(state, tmp))
    _atomic_write(d / "config.json", lambda tmp: Path(tmp).write_text(json.dumps(config, indent=2) + "\n"))


def load_checkpoint(directory: str | os.PathLike) -> Transformer:
    """Rebuild a Transformer from config.json and model.safetensors."""
    d = Path(directory)
    if not d.is_dir():
        raise FileNotFoundError(f"checkpoint directory '{d}' does not exist")
    config = ModelConfig.from_dict(json.loads((d / "config.json").read_text())["model"])
    model = Transformer(config)
    model.load_state_dict(safe_load(str(d / "model.safetensors")))  # copies into the model's own buffers
    return model
