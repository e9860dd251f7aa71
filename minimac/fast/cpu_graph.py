"""Replay a jitted CPU step with one call into C instead of one Python call per kernel. Lesson 07 (speed appendix).

A TinyJit replays the kernels it captured. On CUDA and METAL tinygrad hands them to a "graph" (CUDA graphs, Metal
indirect command buffers): the whole batch launches with one call. Its CPU backend has no graph, so each kernel goes
through tinygrad's Python dispatch (`engine/realize.py: exec_kernel`): resolve the buffers, compute the launch size,
convert every argument to a ctypes word, call. That is about 35-40 us a kernel on this project's 2-core machine. The
nano LoRA step launches 565 kernels: 21 of its 75 ms were dispatch, 54 ms kernels.

`CPUGraph` is that graph for the CPU. When the jit is captured it writes one table of 64-bit words for the batch:

    per kernel: [kernel address, parts, core_id's slot, nargs, arg 0, ..., arg nargs-1]
                 args: the buffers' addresses in the kernel's order, then its variables (core_id as 0)

and each replay patches the addresses of the jit's input buffers into the table and makes one ctypes call,
`minimac_run_kernels(n, table)` (C_SOURCE of minimac/fast/cpu_threads.py), which calls the kernels in order; a kernel
that tinygrad split into parts runs them on cpu_threads' pool. A symbolic variable that is a kernel argument (the KV
cache's position while decoding) is written into the table per replay like the inputs; a kernel whose launch size is
symbolic stays outside the graph and keeps tinygrad's dispatch, as do copies.

`install()` makes every CPU device use it (`minimac.fast.install()` calls it; MINIMAC_CPU_GRAPH=0, or JIT=2, keeps
tinygrad's dispatch). It needs cpu_threads' library, built on the first jit of CPU kernels; without one (no clang,
Windows) tinygrad's dispatch stays.

Worked example: any jitted function on the CPU, e.g. `step = TinyJit(lambda a: ((a @ b).relu().contiguous() *
2).sum(1).realize())`, two kernels. From its second call (the capture) on, both run through one `CPUGraph`, with the
numbers of tinygrad's own replay bit for bit (tests/test_cpu_graph.py). Profile with JIT=2 to see kernels one by
one (`benchmarks/profile_step.py` does).
"""
from __future__ import annotations

import os
import sys
import time

import numpy as np
from tinygrad import Device
from tinygrad.engine.jit import GraphRunner
from tinygrad.runtime.ops_cpu import CPUDevice
from tinygrad.uop.ops import UOp

from minimac.fast import cpu_threads

HEADER = 4                                      # kernel, parts, slot, nargs


class CPUGraph(GraphRunner):
    """A batch of a TinyJit's CPU kernels as one table, run by one call into C (see the module docstring)."""

    def __init__(self, linear: UOp, input_uops: tuple[UOp, ...] = ()):
        super().__init__(linear, input_uops)
        words: list[int] = []
        self.patches: list[tuple[int, int]] = []   # (word in the table, input slot): the jit's inputs, set per replay
        self.var_words: list[tuple[int, int]] = []  # (word in the table, index in self.vars): set per replay
        for j, ((_, ast, bufs, _), runtime) in enumerate(zip(self.calls, self.runtimes, strict=True)):
            info = ast.arg
            slot = runtime.runtimevars.get("core_id")      # its place among the kernel's arguments
            placeholders = {v.expr: 0 for v in info.vars}
            global_size, _ = info.launch_dims(placeholders)   # not symbolic (supports_uop)
            args = [bufs[i].get_buf(bufs[i].device).va_addr for i in info.globals]
            args += [0 if v is None else v for v in info.vals(placeholders)]
            start = len(words) + HEADER
            for pos, input_slot in self.uop_replace[j]:     # pos: the argument's place among the call's buffers
                if pos in info.globals:
                    self.patches.append((start + info.globals.index(pos), input_slot))
            for i, var_index in self.var_vals_replace.get(j, []):   # i: the variable's place among info.vars
                self.var_words.append((start + len(info.globals) + i, var_index))
            parts = global_size[0] if slot is not None else 1
            words += [runtime.addr, parts, 0 if slot is None else slot, len(args), *args]
        self.table = np.array(words, dtype=np.uint64)
        self.n = len(self.calls)
        self.run = cpu_threads.library().minimac_run_kernels

    def __call__(self, input_uops: tuple[UOp, ...], var_vals: dict[str, int], wait: bool = False) -> float | None:
        for word, input_slot in self.patches:
            buf = input_uops[input_slot].buffer.ensure_allocated()
            self.table[word] = buf.get_buf(buf.device).va_addr
        if self.var_words:
            values = [var_vals[v] for v in self.vars]
            for word, var_index in self.var_words:
                self.table[word] = values[var_index]
        st = time.perf_counter()
        if self.run(self.n, self.table.ctypes.data) != 0:
            raise RuntimeError("minimac.fast.cpu_graph: a kernel table entry was refused "
                               "(more than 60 arguments or parts)")
        return time.perf_counter() - st if wait else None

    @staticmethod
    def supports_uop(batch_devs, new_call: UOp) -> bool:
        """Programs on one CPU device whose launch size is a number (a symbolic variable may be an argument, like
        the KV cache's position while decoding, but not the number of parts), and not compiled by the LVP renderer
        (which takes its arguments another way)."""
        if not GraphRunner.supports_uop(batch_devs, new_call):
            return False
        info = new_call.src[0].arg
        if not all(isinstance(d, int) for d in (*info.global_size, *(info.local_size or ()))) \
                or info.global_size[0] > 64:
            return False
        if cpu_threads.library() is None:          # built on the first CPU jit; without it tinygrad's dispatch stays
            return False
        return all(not getattr(d, "renderer", None) or type(d.renderer).__name__ != "LVPRenderer" for d in batch_devs)


_tinygrad_init = CPUDevice.__dict__.get("_tinygrad_init", CPUDevice.__init__)  # kept across reloads
CPUDevice._tinygrad_init = _tinygrad_init


def _init_with_graph(self, device: str = ""):
    _tinygrad_init(self, device)
    if _enabled():
        self.graph = CPUGraph


def _enabled() -> bool:
    return os.environ.get("MINIMAC_CPU_GRAPH", "1") != "0" and sys.platform != "win32"


def install() -> bool:
    """CPU devices opened from now on (and one already open) replay jits through CPUGraph. False when
    MINIMAC_CPU_GRAPH=0 or on Windows. The C library is built on the first jit of CPU kernels, not here."""
    if not _enabled():
        return False
    CPUDevice.__init__ = _init_with_graph
    for name in Device._opened_devices:
        if name.split(":")[0] == "CPU":
            Device[name].graph = CPUGraph
    return True


def uninstall() -> None:
    """tinygrad's dispatch again, for jits captured from now on (a captured jit keeps its graphs)."""
    CPUDevice.__init__ = _tinygrad_init
    for name in Device._opened_devices:
        if name.split(":")[0] == "CPU":
            Device[name].graph = None
