"""The minimac transformer: config presets, a pre-norm LLaMA-style decoder, save/load and generation hooks. Lesson 06.

    tokens (B, T) -> token_embedding -> dropout -> L x [x += attention(attention_norm(x));
                                                        x += feed_forward(ffn_norm(x))] -> norm -> lm_head -> logits

Built from the lesson 02-05 modules (RMSNorm, RoPE, grouped-query attention, SwiGLU). No biases anywhere; every
linear and embedding weight starts as N(0, 0.02); `lm_head` shares `token_embedding.weight` by default (tied).

Presets (seed sizes; `vocab_size` is yours to choose, it follows your tokenizer). Parameters with tied embeddings,
V*d + L*(2d^2 + 2d*(Hkv*hd) + 3*d*d_ff + 2d) + d:

    preset  d_model L  Hq:Hkv d_ff  max_seq_len  params @ V=8,000  params @ V=32,000
    nano      128   4   4:2    512      256            2,008,192          5,080,192   (default V=4,096: 1,508,480)
    tiny      256   4   4:2   1024     1024            5,982,464         12,126,464
    small     512   6   8:2   2048     1024           26,909,184         39,197,184
    medium    768  12  12:3   3072     1024          108,792,576        127,224,576   (the seed's released 127M)
    large    1024  16  16:4   4096     1024          251,495,424        276,071,424

`nano` is minimac's own: small enough to train in minutes on a laptop CPU for the lessons (head_dim 32 like the
seed's small, 2 query heads per KV head like tiny, a 4,096-token BPE vocab that a few MB of text can fill, 256-token
context). The seed presets get vocab 8,000 (the seed's trained tokenizer) and max_seq_len 1,024 (the seed's medium
YAML; the seed's config default is 2,048). Override anything: `ModelConfig.from_preset("small", vocab_size=32000)`.

Not covered: LayerNorm/GeGLU variants, scaled residual init (the seed promises it but never does it), mixed precision.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from tinygrad import Device, Tensor, UOp, dtypes
from tinygrad.nn import Embedding
from tinygrad.nn.state import get_state_dict

from minimac import parallel
from minimac.attention import GroupedQueryAttention
from minimac.feedforward import SwiGLU
from minimac.norm import RMSNorm
from minimac.ops import Linear, embedding
from minimac.rope import RotaryEmbedding

_SIZE_FIELDS = ("vocab_size", "d_model", "num_layers", "num_query_heads", "num_kv_heads", "d_ff", "max_seq_len")
PRESETS: dict[str, dict[str, int]] = {name: dict(zip(_SIZE_FIELDS, sizes)) for name, sizes in {
    #          vocab  d_model  L   Hq  Hkv  d_ff  max_seq_len
    "nano":   (4096,  128,     4,  4,  2,   512,  256),
    "tiny":   (8000,  256,     4,  4,  2,   1024, 1024),
    "small":  (8000,  512,     6,  8,  2,   2048, 1024),
    "medium": (8000,  768,     12, 12, 3,   3072, 1024),
    "large":  (8000,  1024,    16, 16, 4,   4096, 1024),
}.items()}
FFN_TYPES = ("swiglu", "dendritic")


@dataclass
class ModelConfig:
    """Every size of the model. Defaults are the `nano` preset.

    >>> ModelConfig.from_preset("tiny", vocab_size=32000).param_count()
    12126464
    """

    vocab_size: int = 4096
    d_model: int = 128
    num_layers: int = 4
    num_query_heads: int = 4
    num_kv_heads: int = 2
    d_ff: int = 512
    max_seq_len: int = 256
    rope_base: float = 10000.0
    norm_eps: float = 1e-6
    dropout: float = 0.0
    tie_embeddings: bool = True
    ffn_type: str = "swiglu"     # "swiglu" (lesson 05) or "dendritic" (context-gated compartments, lesson 14)
    num_dendrites: int = 4       # "dendritic" only: compartments of d_ff / num_dendrites units each

    def __post_init__(self):
        for name in _SIZE_FIELDS:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise TypeError(f"ModelConfig.{name} must be an int, got {value!r}")
            if value <= 0:
                raise ValueError(f"ModelConfig.{name} must be positive, got {value}")
            setattr(self, name, int(value))
        for name in ("rope_base", "norm_eps", "dropout"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise TypeError(f"ModelConfig.{name} must be a number, got {value!r}")
            setattr(self, name, float(value))
        if self.d_model % self.num_query_heads:
            raise ValueError(f"ModelConfig.d_model ({self.d_model}) must be divisible by "
                             f"num_query_heads ({self.num_query_heads})")
        if self.num_query_heads % self.num_kv_heads:
            raise ValueError(f"ModelConfig.num_query_heads ({self.num_query_heads}) must be a multiple of "
                             f"num_kv_heads ({self.num_kv_heads})")
        if self.head_dim % 2:
            raise ValueError(f"ModelConfig.head_dim = d_model // num_query_heads = {self.head_dim} must be even "
                             "(RoPE rotates pairs of features)")
        if self.rope_base <= 0:
            raise ValueError(f"ModelConfig.rope_base must be positive, got {self.rope_base}")
        if not 0 < self.norm_eps < 1:
            raise ValueError(f"ModelConfig.norm_eps must be in (0, 1), got {self.norm_eps}")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"ModelConfig.dropout must be in [0, 1), got {self.dropout}")
        if not isinstance(self.tie_embeddings, bool):
            raise TypeError(f"ModelConfig.tie_embeddings must be a bool, got {self.tie_embeddings!r}")
        if self.ffn_type not in FFN_TYPES:
            raise ValueError(f"ModelConfig.ffn_type must be one of {', '.join(map(repr, FFN_TYPES))}, "
                             f"got {self.ffn_type!r}")
        if isinstance(self.num_dendrites, bool) or not isinstance(self.num_dendrites, (int, np.integer)):
            raise TypeError(f"ModelConfig.num_dendrites must be an int, got {self.num_dendrites!r}")
        if self.num_dendrites <= 0:
            raise ValueError(f"ModelConfig.num_dendrites must be positive, got {self.num_dendrites}")
        self.num_dendrites = int(self.num_dendrites)
        if self.ffn_type == "dendritic" and self.d_ff % self.num_dendrites:
            raise ValueError(f"ModelConfig.d_ff ({self.d_ff}) must be divisible by num_dendrites "
                             f"({self.num_dendrites}) for ffn_type 'dendritic'")

    @property
    def head_dim(self) -> int:
        return self.d_model // self.num_query_heads

    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> ModelConfig:
        """A preset ("nano", "tiny", "small", "medium", "large") with some fields overridden."""
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
        return cls.from_dict({**PRESETS[name], **overrides})

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelConfig:
        unknown = sorted(set(d) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise ValueError(f"unknown ModelConfig field(s): {', '.join(unknown)}")
        return cls(**d)

    def param_count(self) -> int:
        """Parameters by the seed's arithmetic (the tied lm_head counted once)."""
        d, kv = self.d_model, self.num_kv_heads * self.head_dim
        per_layer = 2 * d * d + 2 * d * kv + 3 * d * self.d_ff + 2 * d
        if self.ffn_type == "dendritic":
            per_layer += d * self.num_dendrites  # the context gate, Linear(d_model, num_dendrites)
        head = 0 if self.tie_embeddings else self.vocab_size * d
        return self.vocab_size * d + self.num_layers * per_layer + d + head


class TransformerBlock:
    """Pre-norm block: x + attention(norm(x)), then + feed_forward(norm(.))."""

    def __init__(self, config: ModelConfig, rope: RotaryEmbedding):
        c = config
        self.attention_norm = RMSNorm(c.d_model, c.norm_eps)
        self.attention = GroupedQueryAttention(c.d_model, c.num_query_heads, c.num_kv_heads, c.max_seq_len,
                                               c.rope_base, c.dropout, rope=rope)
        self.ffn_norm = RMSNorm(c.d_model, c.norm_eps)
        if c.ffn_type == "dendritic":
            from minimac.neuro.dendritic import DendriticFFN  # lesson 14; imported here: neuro builds on the model
            self.feed_forward = DendriticFFN(c.d_model, c.d_ff, c.num_dendrites, c.dropout)
        else:
            self.feed_forward = SwiGLU(c.d_model, c.d_ff, c.dropout)

    def __call__(self, x: Tensor, start_pos: int | UOp = 0, attention_mask: Tensor | None = None,
                 use_cache: bool = False) -> Tensor:
        h = x + self.attention(self.attention_norm(x), start_pos, attention_mask, use_cache)
        return h + self.feed_forward(self.ffn_norm(h))


def _as_int_tensor(x: Any, name: str) -> tuple[Tensor, np.ndarray | None]:
    """A list/numpy array becomes an int32 Tensor (returning the host copy for cheap checks); a Tensor passes."""
    if isinstance(x, Tensor):
        if not dtypes.is_int(x.dtype) and x.dtype != dtypes.bool:
            raise TypeError(f"{name} must be an integer tensor, got dtype {x.dtype}")
        return x, None
    arr = np.asarray(x)
    if arr.size and not np.issubdtype(arr.dtype, np.integer) and arr.dtype != np.bool_:
        raise TypeError(f"{name} must hold integers, got {arr.dtype}")
    arr = arr.astype(np.int32)
    return Tensor(arr, dtype=dtypes.int32), arr


class Transformer:
    """A decoder-only LLaMA-style language model.

    >>> model = Transformer(ModelConfig(vocab_size=300, d_model=32, num_layers=1, num_query_heads=2,
    ...                                 num_kv_heads=1, d_ff=64, max_seq_len=16))
    >>> model([[1, 2, 3]]).shape      # (B, T) token ids -> (B, T, V) float32 logits
    (1, 3, 300)
    """

    def __init__(self, config: ModelConfig):
        if not isinstance(config, ModelConfig):
            raise TypeError(f"Transformer needs a ModelConfig, got {type(config).__name__}")
        c = self.config = config
        self.rope = RotaryEmbedding(c.head_dim, c.max_seq_len, c.rope_base)  # one table, shared by every layer
        self.token_embedding = Embedding(c.vocab_size, c.d_model)
        self.layers = [TransformerBlock(c, self.rope) for _ in range(c.num_layers)]
        self.norm = RMSNorm(c.d_model, c.norm_eps)
        self.lm_head = Linear(c.d_model, c.vocab_size, bias=False)
        for name, w in get_state_dict(self).items():
            if not name.endswith("norm.weight"):
                w.replace(Tensor.normal(*w.shape, mean=0.0, std=0.02, dtype=dtypes.float32))
        if c.tie_embeddings:
            self.lm_head.weight = self.token_embedding.weight  # the same Tensor: trained and saved once
        Tensor.realize(*self.parameters())

    # ---- forward ---------------------------------------------------------------------------------------------
    def _embed(self, tokens: Any, start_pos: int | UOp, replicated: bool = False) -> Tensor:
        tokens, host = _as_int_tensor(tokens, "tokens")
        if tokens.ndim != 2:
            raise ValueError(f"tokens must be 2-D (batch, time), got shape {tuple(tokens.shape)}; "
                             "wrap a single sequence as [ids]")
        T = tokens.shape[1]
        if isinstance(T, int) and T == 0:
            raise ValueError("tokens is empty (time dimension 0)")
        if isinstance(start_pos, int):
            if start_pos < 0:
                raise ValueError(f"start_pos must be >= 0, got {start_pos}")
            if start_pos + T > self.config.max_seq_len:
                raise ValueError(f"sequence of {T} tokens from position {start_pos} is longer than "
                                 f"max_seq_len {self.config.max_seq_len}; crop it to the last tokens")
        if host is not None:
            check_ids(host, self.config.vocab_size)
        weights_on = parallel.devices_of(self.token_embedding.weight)
        if parallel.devices_of(tokens) != weights_on:  # weights on several devices (minimac/parallel.py)
            tokens = parallel.place_input(tokens, weights_on, replicated)
        x = embedding(self.token_embedding.weight, tokens)                  # (B, T, d)
        return x.dropout(self.config.dropout)  # only under Context(TRAINING=1)

    def hidden_states(self, tokens: Any, start_pos: int | UOp = 0, attention_mask: Any = None,
                      use_cache: bool = False) -> Tensor:
        """Final-normed hidden states (B, T, d_model), the input of `lm_head`."""
        x = self._embed(tokens, start_pos, replicated=use_cache)
        mask = None if attention_mask is None else _as_int_tensor(attention_mask, "attention_mask")[0]
        if mask is not None and isinstance(x.device, tuple):
            mask = mask.shard_like(x)   # the same rows on the same devices as the tokens
        for layer in self.layers:
            x = layer(x, start_pos, mask, use_cache)
        # stored once: otherwise the norm is recomputed inside lm_head's matmuls, the step's largest (CPU: -13% step)
        return self.norm(x).contiguous()

    def __call__(self, tokens: Any, start_pos: int | UOp = 0, attention_mask: Any = None, use_cache: bool = False,
                 last_only: bool = False) -> Tensor:
        """tokens (B, T) int -> logits (B, T, V) float32 (or (B, 1, V) with `last_only`, for generation).

        start_pos: absolute position of tokens[:, 0] (RoPE offset; with use_cache, the number of cached tokens).
        attention_mask: optional (B, S) padding mask, 1 = real token; S = T, or start_pos + T with use_cache.
        use_cache: write keys/values into each layer's KV cache and attend over everything cached so far.
        """
        h = self.hidden_states(tokens, start_pos, attention_mask, use_cache)
        if last_only:
            h = h[:, -1:]
        logits = self.lm_head(h).cast(dtypes.float32)
        # weights on several devices and tokens on one: the logits come back to the tokens' device
        given = tokens.device if isinstance(tokens, Tensor) else Device.DEFAULT
        return logits if logits.device == given else logits.to(given)

    def reset_cache(self) -> None:
        for layer in self.layers:
            layer.attention.reset_cache()

    # ---- parameters and state ---------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Tensor]:
        """Seed names (`layers.0.attention.q_proj.weight`); when tied, `lm_head.weight` is `token_embedding.weight`."""
        return get_state_dict(self)

    def parameters(self) -> list[Tensor]:
        """Trainable tensors, each once (no RoPE tables, no KV caches)."""
        seen: dict[int, Tensor] = {}
        for t in self.state_dict().values():
            seen.setdefault(id(t), t)
        return list(seen.values())

    def param_count(self) -> int:
        return sum(math.prod(t.shape) for t in self.parameters())

    def load_state_dict(self, state_dict: dict[str, Tensor], strict: bool = True) -> None:
        """Copy weights in place with `assign`: the same buffers, so tied weights stay tied and a TinyJit captured
        earlier sees the new values. When tied, `lm_head.weight` is optional and ignored (`token_embedding.weight`
        is the one copy). Clears the KV caches."""
        own = self.state_dict()
        expected = set(own) - ({"lm_head.weight"} if self.config.tie_embeddings else set())
        missing, unexpected = sorted(expected - set(state_dict)), sorted(set(state_dict) - set(own))
        if strict and (missing or unexpected):
            raise ValueError(f"state dict does not match the model: missing {missing or 'nothing'}, "
                             f"unexpected {unexpected or 'nothing'}")
        for name in sorted(expected & set(state_dict)):
            src, dst = state_dict[name], own[name]
            if tuple(src.shape) != tuple(dst.shape):
                raise ValueError(f"shape mismatch for {name}: the model has {tuple(dst.shape)}, "
                                 f"the state dict {tuple(src.shape)}")
            dst.assign(src.to(dst.device).cast(dst.dtype))
        Tensor.realize(*self.parameters())
        self.reset_cache()


def check_ids(ids: Any, vocab_size: int) -> None:
    """Raise ValueError if any token id is outside [0, vocab_size). On a Tensor this reads it back (a device sync),
    so the forward pass only checks lists and numpy arrays; call this yourself on tensors you build."""
    arr = ids.numpy() if isinstance(ids, Tensor) else np.asarray(ids)
    if arr.size and (arr.min() < 0 or arr.max() >= vocab_size):
        bad = arr[(arr < 0) | (arr >= vocab_size)]
        raise ValueError(f"token id {int(bad.flat[0])} is out of range for vocab_size {vocab_size} "
                         f"({bad.size} id(s) outside [0, {vocab_size}))")


__all__ = ["PRESETS", "ModelConfig", "Transformer", "TransformerBlock", "check_ids"]
