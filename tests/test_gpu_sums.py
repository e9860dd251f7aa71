"""minimac.fast.gpu_sums: a GPU matrix-vector product as one block of threads an output row, and a sum to a few values
as one wide block, checked on tinygrad's emulated NVIDIA GPU (DEV=PYTHON::sm_80, the kernels tinygrad renders for
CUDA, run in Python) against numpy; which kernels each rule takes, and that the device table's 0 and the CPU leave
tinygrad's choice."""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from tinygrad import Tensor
from tinygrad.helpers import Context

from minimac.fast import gpu_sums

ROOT = Path(__file__).resolve().parent.parent

# runs in a child process: the emulated device must be chosen before tinygrad starts. The opts of each kernel with a
# sum, a list for each case
RECORDING = r"""
import json
import numpy as np
import minimac.fast
minimac.fast.install()
import tinygrad.codegen.opt.heuristic as heuristic
from tinygrad import Tensor, UOp
chosen, hook = [[]], heuristic.hand_coded_optimizations
def recording(k):
    out = hook(k)
    if k.reduceop is not None:
        chosen[-1].append([f"{o.op.name}{o.arg}" for o in out.applied_opts])
    return out
heuristic.hand_coded_optimizations = recording
"""

PRODUCTS = RECORDING + r"""
rng = np.random.default_rng(0)
K, N = 256, 64
w, g = rng.standard_normal((N, K)).astype(np.float32), rng.standard_normal(K).astype(np.float32)
cases = {"one row": (1, False), "batch of 3": (3, False), "16 rows": (16, False), "one row, scaled input": (1, True)}
out = {}
for name, (rows, scaled) in cases.items():
    chosen.append([])
    x = rng.standard_normal((rows, K)).astype(np.float32)
    xt = Tensor(x) * Tensor(g) if scaled else Tensor(x)
    got = (xt @ Tensor(w).T).numpy()
    ref = ((x * g) if scaled else x).astype(np.float64) @ w.T.astype(np.float64)
    out[name] = {"chosen": chosen[-1], "err": float(np.abs(got - ref).max() / np.abs(ref).max())}
chosen.append([])
x = rng.standard_normal((64, K)).astype(np.float32)
norms = (Tensor(x) * Tensor(x)).sum(-1).numpy()        # a row sum: no weight, no vector
ref = (x.astype(np.float64) ** 2).sum(-1)
out["row sums"] = {"chosen": chosen[-1], "err": float(np.abs(norms - ref).max() / ref.max())}
for name, shape in {"max of 8,000": (1, 8000), "12 sums of 1,024": (12, 1024), "100 sums of 1,024": (100, 1024)}.items():
    chosen.append([])
    x = rng.standard_normal(shape).astype(np.float32)
    got = (Tensor(x).max(-1).numpy(), Tensor(x).sum(-1).numpy())
    err = max(float(np.abs(got[0] - x.max(-1)).max()), float(np.abs(got[1] - x.astype(np.float64).sum(-1)).max()))
    out[name] = {"chosen": chosen[-1], "err": err / float(np.abs(x).max())}
print(json.dumps(out))
"""

# a batch's decoding attention sums over the keys so far, a bound Variable: a sum and a max over 23 of up to 40
SYMBOLIC = RECORDING + r"""
x = np.random.default_rng(0).standard_normal((2, 3, 64, 40)).astype(np.float32)   # (batch, heads, d, keys)
n = UOp.variable("n", 1, 40).bind(23)
keys = Tensor(x).shrink(((0, 2), (0, 3), (0, 64), (0, n)))
got, ref = (keys.sum(-1).numpy(), keys.max(-1).numpy()), (x[..., :23].astype(np.float64).sum(-1), x[..., :23].max(-1))
print(json.dumps({"chosen": chosen[-1], "err": max(float(np.abs(g - r).max() / np.abs(r).max()) for g, r in zip(got, ref))}))
"""

DECODE = r"""
import dataclasses, json
import numpy as np
import minimac.fast
minimac.fast.install()
from minimac.fast import devices
devices.DEVICES["CUDA"] = dataclasses.replace(devices.capabilities("CUDA"), padded_window=True)   # both GPU choices
import tinygrad.codegen.opt.heuristic as heuristic
from tinygrad import Tensor
from minimac.generate import generate_batch
from minimac.fast import gpu_sums
ours, wide, symbolic, hook = [], [], [], heuristic.hand_coded_optimizations
def recording(k):
    out = hook(k)
    symbolic.append(gpu_sums.symbolic(k) is not None)
    opts = [f"{o.op.name}{o.arg}" for o in out.applied_opts]
    ours.append(opts[:2] == ["UNROLL4", "GROUP32"])
    wide.append(opts == ["GROUP32"])
    return out
heuristic.hand_coded_optimizations = recording
from minimac.model import ModelConfig, Transformer
cfg = ModelConfig(vocab_size=1024, d_model=128, num_layers=1, num_query_heads=2, num_kv_heads=1, d_ff=256, max_seq_len=16)
Tensor.manual_seed(0)
model = Transformer(cfg)
for t in model.parameters():  # the same weights on every device, whatever its random stream
    t.assign(Tensor(np.random.default_rng(t.numel()).standard_normal(t.shape).astype(np.float32) * 0.2)).realize()
ids = generate_batch(model, [[1, 2, 3], [4, 5, 6, 7]], 5, temperature=0)
print(json.dumps({"ids": ids, "blocks a row": sum(ours), "wide": sum(wide), "symbolic": sum(symbolic)}))
"""


def _run(script: str, dev: str, threads: int) -> object:
    env = {**os.environ, "DEV": dev, "PARALLEL": "0", "PYTHONPATH": str(ROOT),
           "MINIMAC_CAPABILITIES": f"matvec_threads={threads},wide_sum_threads={8 * threads},symbolic_sum_threads={threads}"}
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=False,
                         timeout=900, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def with_32():
    """The products and sums on the emulated GPU with matvec_threads=32 and wide_sum_threads=256."""
    return _run(PRODUCTS, "PYTHON::sm_80", 32)


def test_products_of_up_to_8_rows_get_a_block_a_row_and_numpys_numbers(with_32):
    got = with_32
    assert got["one row"]["chosen"] == [["UNROLL4", "GROUP32"]]
    assert got["one row, scaled input"]["chosen"] == [["UNROLL4", "GROUP32"]]     # the input computed in the kernel
    assert got["batch of 3"]["chosen"] == [["UNROLL4", "GROUP32", "UPCAST0"]]     # the 3 rows inside each thread
    assert ["UNROLL4", "GROUP32"] != got["16 rows"]["chosen"][0][:2]              # a matmul: tinygrad's choice
    assert ["UNROLL4", "GROUP32"] != got["row sums"]["chosen"][0][:2]
    for case in got.values():
        assert case["err"] < 1e-5


def test_sums_to_a_few_values_get_about_sqrt_length_threads_each(with_32):
    got = with_32                                                        # at most 256 threads
    assert got["max of 8,000"]["chosen"] == [["GROUP80"], ["GROUP80"]]   # 80 x 100
    assert got["12 sums of 1,024"]["chosen"] == [["GROUP32"], ["GROUP32"]]
    assert got["100 sums of 1,024"]["chosen"] == [["GROUPTOP16"], ["GROUPTOP16"]]   # > 64 values: tinygrad's split
    for name in ("max of 8,000", "12 sums of 1,024", "100 sums of 1,024"):
        assert got[name]["err"] < 1e-5


def test_sums_of_a_symbolic_length_get_a_thread_an_output():
    """A batch's attention sums (the keys so far: a bound Variable) as one thread an output, 32 along the last axis;
    tinygrad's own choice gives each thread 4 outputs."""
    ours, theirs = _run(SYMBOLIC, "PYTHON::sm_80", 32), _run(SYMBOLIC, "PYTHON::sm_80", 0)
    assert ours["chosen"] == [["LOCAL32"], ["LOCAL32"]]
    assert theirs["chosen"] and all(c != ["LOCAL32"] for c in theirs["chosen"])
    assert ours["err"] < 1e-5 and theirs["err"] < 1e-5


@pytest.mark.slow
def test_0_threads_in_the_table_leave_tinygrads_choice():
    got = _run(PRODUCTS, "PYTHON::sm_80", 0)
    assert got["one row"]["chosen"] and got["one row"]["chosen"][0][:2] != ["UNROLL4", "GROUP32"]
    assert got["max of 8,000"]["chosen"] == [["GROUPTOP16"], ["GROUPTOP16"]]
    assert got["one row"]["err"] < 1e-5


@pytest.mark.slow
def test_greedy_decoding_on_an_emulated_nvidia_gpu_with_the_rule_gives_the_cpus_ids():
    """With fast/attention.py's padded window too (the other GPU choice of a decoding step, off on the CPU)."""
    gpu, cpu = _run(DECODE, "PYTHON::sm_80", 32), _run(DECODE, "CPU", 0)
    assert gpu["ids"] == cpu["ids"]
    assert gpu["blocks a row"] >= 6 and cpu["blocks a row"] == 0   # q, k, v, o, w1/w3, w2, lm_head, at batch 2
    assert gpu["wide"] >= 1 and cpu["wide"] == 0                    # the argmax over 1,024 ids
    assert gpu["symbolic"] >= 2 and cpu["symbolic"] == 0            # the batch's softmax sums, probabilities @ values


def test_cpu_kernels_are_not_touched(monkeypatch):
    from tinygrad.codegen.opt import heuristic

    seen, hook = [], heuristic.hand_coded_optimizations

    def recording(k):
        seen.append(k.copy())
        return hook(k)

    monkeypatch.setenv("MINIMAC_CAPABILITIES", "matvec_threads=32,wide_sum_threads=256,symbolic_sum_threads=32")
    monkeypatch.setattr(heuristic, "hand_coded_optimizations", recording)
    rng = np.random.default_rng(1)
    x, w = rng.standard_normal((1, 256)).astype(np.float32), rng.standard_normal((64, 256)).astype(np.float32)
    with Context(PARALLEL=0):   # compile in this process, where the recording hook is
        out = (Tensor(x) @ Tensor(w).T).numpy()
    np.testing.assert_allclose(out, x @ w.T, rtol=1e-4, atol=1e-4)
    assert seen and all(gpu_sums.rows(k) is None and gpu_sums.wide(k) is None and gpu_sums.symbolic(k) is None
                        for k in seen)


def test_the_environment_overrides_fields_of_the_device_table(monkeypatch):
    from minimac.fast import devices
    monkeypatch.setenv("MINIMAC_CAPABILITIES", "matvec_threads=32, padded_window=1")
    row = devices.capabilities("CUDA")
    assert row.matvec_threads == 32 and row.padded_window is True
    assert row.tensor_core_tiles == devices.DEVICES["CUDA"].tensor_core_tiles    # the rest of the row is the table's
    monkeypatch.setenv("MINIMAC_CAPABILITIES", "")
    assert devices.capabilities("CUDA") == devices.DEVICES["CUDA"]
    monkeypatch.setenv("MINIMAC_CAPABILITIES", "matvec_thread=32")
    with pytest.raises(ValueError, match="'matvec_thread=32' is not FIELD=N"):
        devices.capabilities("CUDA")


@pytest.mark.slow
def test_the_offline_listing_shows_what_a_gpu_would_run():
    """benchmarks/decode_kernels.py --target sm_90: a decode step's kernels compiled for an NVIDIA target, no GPU."""
    def listing(*extra: str) -> str:   # nano: about 12 s
        out = subprocess.run([sys.executable, "benchmarks/decode_kernels.py", "--preset", "nano", "--target", "sm_90",
                              *extra], env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True,
                             timeout=600, cwd=ROOT, check=False)
        assert out.returncode == 0, out.stderr[-3000:]
        return out.stdout
    unpadded, row = listing("--set", "padded_window=0"), listing()
    assert "a token at position 160, for sm_90 padded_window=0" in unpadded
    assert "UNROLL4 GROUP32" in unpadded and "UNROLL4 GROUP32" in row    # the CUDA row's matrix-vector rule
    assert "(start_pos+1)" in unpadded and "(start_pos+1)" not in row   # the symbolic key loops the padding removes
    taking = [int(re.search(r"; (\d+) kernels take a variable", x).group(1)) for x in (unpadded, row)]
    assert 0 < taking[0] and 0 < taking[1]   # the position: the cache's write, rotary, the key mask
