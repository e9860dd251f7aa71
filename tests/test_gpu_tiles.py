"""minimac.fast.gpu_tiles: larger tensor-core tiles on NVIDIA GPUs, checked on tinygrad's emulated GPU (DEV=PYTHON::sm_80,
the tensor cores of an A100/H100 run in Python) against numpy, and left out everywhere else."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from tinygrad import Tensor
from tinygrad.helpers import Context

from minimac.fast import cpu_tiles, gpu_tiles

ROOT = Path(__file__).resolve().parent.parent

# runs in a child process: the emulated device must be chosen before tinygrad starts
MATMUL = r"""
import json, sys
import numpy as np
import minimac.fast
minimac.fast.install()
import tinygrad.codegen.opt.heuristic as heuristic
from tinygrad import Tensor, dtypes
M, K, N = (int(v) for v in sys.argv[1:4])
chosen, hook = [], heuristic.hand_coded_optimizations
def recording(k):
    out = hook(k)
    if k.reduceop is not None:
        chosen.append([f"{o.op.name}{o.arg}" for o in out.applied_opts])
    return out
heuristic.hand_coded_optimizations = recording
def bf16(x):   # round to nearest even, as the cast does
    u = x.view(np.uint32).astype(np.uint64)
    return ((u + 0x7FFF + ((u >> 16) & 1)) & 0xFFFF0000).astype(np.uint32).view(np.float32)
rng = np.random.default_rng(0)
a, b = rng.standard_normal((M, K)).astype(np.float32), rng.standard_normal((K, N)).astype(np.float32)
out = Tensor(a).cast(dtypes.bfloat16).contiguous().matmul(Tensor(b).cast(dtypes.bfloat16).contiguous(),
                                                          dtype=dtypes.float32).numpy()
ref = bf16(a).astype(np.float64) @ bf16(b).astype(np.float64)
print(json.dumps({"chosen": chosen, "err": float(np.abs(out - ref).max() / np.abs(ref).max())}))
"""

STEP = r"""
import json
import numpy as np
import minimac.fast
minimac.fast.install()
import tinygrad.codegen.opt.heuristic as heuristic
from tinygrad import dtypes
from tinygrad.uop.ops import Ops
from minimac.fast.linear import set_matmul_dtype
from minimac.model import ModelConfig, Transformer
from minimac.train import TrainConfig, Trainer
with_tc, without = [], []
hook = heuristic.hand_coded_optimizations
def recording(k):
    out = hook(k)
    red = k.reduceop
    if red is not None and red.arg[0] is Ops.ADD and any(
            u.op is Ops.MUL and all(s.dtype == dtypes.bfloat16 for s in u.src) for u in red.src[0].toposort()):
        (with_tc if getattr(out, "tensor_core", None) is not None else without).append([int(s) for s in k.full_shape])
    return out
heuristic.hand_coded_optimizations = recording
set_matmul_dtype("bfloat16")
cfg = ModelConfig.from_preset("nano", d_model=64, num_layers=1, num_query_heads=4, num_kv_heads=2, d_ff=64,
                              vocab_size=64, max_seq_len=16)
rng = np.random.default_rng(0)
trainer = Trainer(Transformer(cfg), TrainConfig(batch_size=2, seq_len=16), lambda s: rng.integers(0, 64, (2, 17)),
                  jit=False)
loss, norm = trainer.train_step(rng.integers(0, 64, (2, 17)))
print(json.dumps({"with_tc": with_tc, "without": without, "loss": loss}))
"""


def _emulated(script: str, *args: str, **env: str) -> dict:
    full_env = {k: v for k, v in os.environ.items() if k != "MINIMAC_GPU_TILES"}
    full_env.update(DEV="PYTHON::sm_80", PARALLEL="0", PYTHONPATH=str(ROOT), **env)
    out = subprocess.run([sys.executable, "-c", script, *args], env=full_env, capture_output=True, text=True, check=False,
                         timeout=600, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_a_bf16_matmul_gets_8_x_4_blocks_a_warp_and_numpys_numbers():
    got = _emulated(MATMUL, "64", "32", "64")
    # M by 4, then N by 8 as 4 x 2 (tinygrad's heuristic: 4, 4 and LOCAL 4)
    assert got["chosen"] == [["TC(-1, 0, 1)", "UPCAST4", "UPCAST4", "UPCAST2"]]
    assert got["err"] < 1e-6


def test_axes_that_8_and_4_do_not_divide_get_the_next_factor_that_does():
    got = _emulated(MATMUL, "48", "32", "80")   # 48 rows: 3 blocks of 16; 80 columns: 10 blocks of 8
    assert got["chosen"] == [["TC(-1, 0, 1)", "UPCAST3", "UPCAST5"]]
    assert got["err"] < 1e-6


def test_minimac_gpu_tiles_0_leaves_tinygrads_choice():
    got = _emulated(MATMUL, "64", "32", "64", MINIMAC_GPU_TILES="0")
    (opts,) = got["chosen"]
    assert opts[0] == "TC(-1, 0, 1)" and opts != ["TC(-1, 0, 1)", "UPCAST4", "UPCAST4", "UPCAST2"]
    assert got["err"] < 1e-6


@pytest.mark.slow
def test_every_bf16_matmul_of_a_training_step_gets_tensor_cores():
    """Attention's dK used to be written straight into k_proj's (B, T, Hkv * hd) layout; the merged Hkv * hd axis is no
    single affine index and tinygrad fell back to a plain loop (5.6 TFLOPS on the H100). linear.py stores it first."""
    got = _emulated(STEP)
    assert got["without"] == []
    assert len(got["with_tc"]) >= 10   # forward and both gradients of the projections, attention and lm_head
    assert np.isfinite(got["loss"])


def test_cpu_kernels_are_not_touched(monkeypatch):
    from tinygrad.codegen.opt import heuristic

    seen, hook = [], heuristic.hand_coded_optimizations

    def recording(k):
        seen.append(k.copy())
        return hook(k)

    monkeypatch.setattr(heuristic, "hand_coded_optimizations", recording)
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((40, 24)).astype(np.float32), rng.standard_normal((24, 56)).astype(np.float32)
    with Context(PARALLEL=0):   # compile in this process, where the recording hook is
        out = (Tensor(a) @ Tensor(b)).numpy()
    np.testing.assert_allclose(out, a @ b, rtol=1e-5, atol=1e-5)
    assert seen and all(gpu_tiles.tc_tiled(k, cpu_tiles._tinygrad_heuristic(k)) is None for k in seen)
    assert cpu_tiles.tiled(seen[0]) is not None   # the CPU's own tiles serve it instead
