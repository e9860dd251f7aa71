"""Lesson 06 exercise: assemble the transformer, count it, sample from it, save it. Fill in each function, then run
`pytest lessons/06_transformer`.

README.md gives the stages; peek at minimac/model.py, minimac/generate.py and minimac/checkpoint.py if stuck.
The numpy helpers at the top are given: they are lessons 02-05 (float64, weights stored (out, in), so x @ W.T).
`weights` below is a dict of numpy arrays under minimac's state-dict names, e.g. "layers.0.attention.q_proj.weight";
`config` is a minimac.model.ModelConfig.
"""
from __future__ import annotations

import json  # noqa: F401
import os
import tempfile  # noqa: F401
from pathlib import Path  # noqa: F401

import numpy as np
from tinygrad.nn.state import safe_load, safe_save  # noqa: F401

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
    """Trainable parameters of the model: embedding, per block (q, k, v, o projections, three SwiGLU matrices, two
    norm gains), the final norm, and the output head unless it is tied to the embedding (then it adds nothing).

    param_count(8000, 256, 4, 4, 2, 1024) -> 5982464   (the tiny preset)
    """
    raise NotImplementedError("Stage 1: param_count")


# ---- stage 2 ---------------------------------------------------------------------------------------------------------
def block_forward(x: np.ndarray, weights: dict[str, np.ndarray], layer: int, config: ModelConfig) -> np.ndarray:
    """One pre-norm block on the residual stream x (B, T, d) -> (B, T, d):
    h = x + attention(rms_norm(x, attention_norm)); out = h + swiglu(rms_norm(h, ffn_norm)).
    The weights of block i are named f"layers.{i}.attention.q_proj.weight", ..., f"layers.{i}.ffn_norm.weight".
    """
    raise NotImplementedError("Stage 2: block_forward")


def transformer_forward(tokens: np.ndarray, weights: dict[str, np.ndarray], config: ModelConfig) -> np.ndarray:
    """tokens (B, T) int -> logits (B, T, V): embedding rows, every block, the final norm, then the head.
    With tied embeddings there may be no "lm_head.weight": the head is the embedding matrix itself.
    """
    raise NotImplementedError("Stage 2: transformer_forward")


# ---- stage 3 ---------------------------------------------------------------------------------------------------------
def process_logits(logits: np.ndarray, temperature: float = 1.0, top_k: int | None = None,
                   top_p: float | None = None) -> np.ndarray:
    """Logits (V,) -> filtered logits (float64, removed tokens -inf), in this order:
    temperature (divide, unless it is 0), top-k (keep the k largest), top-p (keep a token if the probability of the
    tokens ranked above it is <= p). Example: probabilities [0.5, 0.3, 0.2] with top_p=0.6 keep the first two.
    """
    raise NotImplementedError("Stage 3: process_logits")


def sample_next(logits: np.ndarray, temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None,
                rng: np.random.Generator | None = None) -> int:
    """The next token id: argmax if temperature == 0 (greedy), else a draw from softmax(process_logits(...)) with
    rng.choice. A negative temperature raises ValueError("temperature must be >= 0 (0 = greedy), got -1.0").
    """
    raise NotImplementedError("Stage 3: sample_next")


# ---- stage 4 ---------------------------------------------------------------------------------------------------------
def generate(model: Transformer, prompt_ids: list[int], max_new_tokens: int, temperature: float = 0.0,
             top_k: int | None = None, top_p: float | None = None, seed: int | None = None) -> list[int]:
    """The new token ids after prompt_ids, one model call per token, no KV cache: run model([ids]) on everything so
    far, take the logits of the last position (.numpy()), pick with sample_next, append, repeat.
    Use one np.random.default_rng(seed) for the whole loop, so a seed makes the result reproducible.
    """
    raise NotImplementedError("Stage 4: generate")


# ---- stage 5 ---------------------------------------------------------------------------------------------------------
def save_checkpoint(model: Transformer, directory: str | os.PathLike) -> None:
    """Write directory/model.safetensors (the state dict, without "lm_head.weight" when the embeddings are tied) and
    directory/config.json ({"format_version": 1, "model": model.config.to_dict()}), each atomically: write a temp file
    in the same directory, then os.replace it onto the real name. Create the directory if needed.
    """
    raise NotImplementedError("Stage 5: save_checkpoint")


def load_checkpoint(directory: str | os.PathLike) -> Transformer:
    """Rebuild the model: ModelConfig.from_dict(config["model"]), Transformer(config), then load_state_dict with the
    tensors of model.safetensors. A missing directory raises FileNotFoundError("checkpoint directory ... does not exist").
    """
    raise NotImplementedError("Stage 5: load_checkpoint")
