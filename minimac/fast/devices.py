"""What minimac/fast/ does on each tinygrad backend: the one table of device choices. Lesson 07 (speed appendix).

Every row was measured where it says "measured" (docs/performance.md has the figures); a backend that nobody has
measured gets the plain row, `OTHER`: tinygrad's own choices, the seams' fast versions only where they are exact
rearrangements of the same arithmetic. `minimac.fast.install()` reads this table; nothing else in minimac names a
backend. For measuring a choice before it goes in, MINIMAC_CAPABILITIES="field=N,field=N" overrides those fields
of every row (an environment variable, so that tinygrad's compile workers see it too).

    >>> capabilities("CPU").polynomial_exp, capabilities("CUDA").polynomial_exp
    (True, False)
"""
from __future__ import annotations

import dataclasses
import functools
import os
from dataclasses import dataclass


@dataclass(frozen=True)
class Capabilities:
    polynomial_exp: bool = False      # fast_exp: exp as a clamped polynomial that clang vectorises (tinygrad's CPU
                                      # backend has no libm; GPUs have exp2 in hardware)
    serial_sum: bool = False          # grad_norm.sum_all: one kernel runs the per-tensor sums in turn (else one each)
    split_matmul_sums: bool = False   # linear: split the sums of skinny matmuls and weight gradients into chunks
                                      # so that enough GPU threads share the work
    atomic_embedding: bool = False    # the embedding's gradient as tinygrad's atomic scatter-add (USE_ATOMICS)
                                      # instead of a one-hot matmul
    outer_product_tiles: bool = False  # cpu_tiles: 4 x 16 register tiles for CPU matmuls and blocked transposes
    tensor_core_tiles: bool = False   # gpu_tiles: 8 x 4 tensor-core blocks a warp
    thread_pool: bool = False         # cpu_threads: THREAD-split CPU kernels run on all cores
    c_graph: bool = False             # cpu_graph: a jitted CPU step replayed by one call into C
    decode_steps_per_call: int = 1    # decode: tokens made by one jit call (fewer calls: less host time a token;
                                      # MINIMAC_DECODE_STEPS=4 tries 4, tests/test_decode.py checks the ids)
    decode_threads: int = 0           # decode steps' kernels split over at most this many threads (0: tinygrad's
                                      # NUM_CPU_THREADS); a step's kernels are small, and split they wait on a core
    decode_batch_transposed: bool = False  # decode_weights: batches of several rows read a copy of each weight laid
                                      # out as W^T (in, out), refreshed once a generate() call: more memory, wider
                                      # vector loads; one row reads W as stored (faster there)
    decode_shared_inputs: bool = False  # decode_weights: q, k, v (and w1, w3) as one matrix-vector product over a
                                      # concatenated copy of their weights (refreshed at each generate() call)
    padded_window: bool = False       # fast/attention: a decoding step's keys of symbolic length padded to the
                                      # longest, masked (one row): sums of a fixed length, split across GPU threads
    matvec_threads: int = 0           # gpu_sums: a GPU matrix-vector product (a decoding step's matmuls) as one
                                      # block of this many threads an output row, float4 loads (0: tinygrad's choice)
    wide_sum_threads: int = 0         # gpu_sums: a sum to at most 64 values (argmax over the vocabulary, softmax
                                      # over keys) split over up to this many threads each (0: tinygrad's 16)
    symbolic_sum_threads: int = 0     # gpu_sums: a sum over a symbolic number of keys (a batch's decoding attention)
                                      # as one thread an output, blocks of up to this many (0: tinygrad's choice)


OTHER = Capabilities()
DEVICES: dict[str, Capabilities] = {
    # measured on 2-core x86-64 machines (clang 14): every CPU item of docs/performance.md
    # decode_threads=1: nano's batch-8 step took 24-31 ms with its matmuls split over the two cores, 5.4-6.4 ms
    # unsplit (load 4.5-4.9; docs/performance.md, Decoding); one token's matvecs are too small to be split anyway
    # decode_batch_transposed: nano's batch-8 step 1.83 ms with W^T copies against 2.77 ms reading W; at batch 1,
    # 2.23 against 1.08 ms (benchmarks/decode_kernels.py); decode_shared_inputs: nano batch 1 963-1,042
    # against 643-718 tokens/s, alternating (a lazy concatenation, read in place, gained nothing at batch 1 and
    # lost 1.8x at batch 8: its gated loads vectorise poorly)
    "CPU": Capabilities(polynomial_exp=True, serial_sum=True, atomic_embedding=True, outer_product_tiles=True,
                        thread_pool=True, c_graph=True, decode_threads=1, decode_batch_transposed=True,
                        decode_shared_inputs=True),
    # measured on an H100 (CUDA); NV is tinygrad's other NVIDIA backend, the same hardware
    # decode_steps_per_call 1: 4 gave the same tokens/s on an H100 (small 1,275 vs 1,309, medium 376 vs 379;
    # benchmarks/gpu_decode.sh, docs/performance.md "Decoding")
    # matvec_threads, wide_sum_threads, padded_window: medium 375 -> 1,334 tokens/s at batch 1, small 1,242 -> 3,118,
    # the same ids as PyTorch's loop (results/h100/session13/decode_schedules.sh, off then on in one call on an H100);
    # small's bf16 training step unchanged by them (152,104 and 151,638 off, 153,144 on: session14/train_rules.sh)
    # decode_shared_inputs, decode_batch_transposed: not shown to pay on a GPU, so off; symbolic_sum_threads (a
    # batch's attention sums): not measured on a GPU yet (results/h100/session14/confirm.sh has the run)
    "CUDA": Capabilities(split_matmul_sums=True, tensor_core_tiles=True, padded_window=True, matvec_threads=32,
                         wide_sum_threads=256),
    "NV": Capabilities(split_matmul_sums=True, tensor_core_tiles=True, padded_window=True, matvec_threads=32,
                       wide_sum_threads=256),
    # tinygrad has an atomic scatter-add there; the splits are untested on AMD and left off
    "AMD": Capabilities(atomic_embedding=True),
    # Apple GPUs: the seams' exact rearrangements only (tests/test_metal.py runs them on an emulated Metal target);
    # other tensor-core shapes than NVIDIA's, so gpu_tiles stays off until measured
    "METAL": OTHER,
}


def backend(t) -> str:
    """The backend of a Tensor, a UOp or a device name (or a tuple of them, all of one backend), without the index:
    "CPU", "CUDA", "METAL", ...; for tinygrad's emulator (DEV=PYTHON::METAL) the backend it emulates."""
    device = getattr(t, "device", t)
    name = str(device[0] if isinstance(device, tuple) else device)   # on several devices (minimac/parallel.py): one
    if name.split(":")[0] == "PYTHON":
        from tinygrad import Device
        return Device[name].renderer.target.device
    return name.split(":")[0]


def capabilities(device) -> Capabilities:
    """The row for `device` (a name, a Tensor or a UOp); `OTHER` for a backend not in the table. MINIMAC_CAPABILITIES
    overrides fields of it."""
    return overridden(DEVICES.get(backend(device), OTHER), os.environ.get("MINIMAC_CAPABILITIES", ""))


@functools.lru_cache(maxsize=64)
def overridden(row: Capabilities, settings: str) -> Capabilities:
    """`row` with the fields of `settings` ("decode_threads=1,padded_window=1") replaced."""
    fields = {f.name: f.type for f in dataclasses.fields(Capabilities)}
    changes = {}
    for item in filter(None, (x.strip() for x in settings.split(","))):
        name, _, value = item.partition("=")
        if name not in fields or not value.isdigit():
            raise ValueError(f"MINIMAC_CAPABILITIES: {item!r} is not FIELD=N with FIELD one of {', '.join(fields)}")
        changes[name] = bool(int(value)) if fields[name] == "bool" else int(value)
    return dataclasses.replace(row, **changes) if changes else row
