"""Replay a jitted CPU step with one call into C instead of one Python call per kernel. Lesson 07.

A TinyJit replays the kernels it captured. On CUDA and METAL tinygrad hands them to a "graph" (CUDA graphs, Metal
indirect command buffers): the whole batch launches with one call. Its CPU backend has no graph, so each kernel goes
through tinygrad's Python dispatch (`engine/realize.py: exec_kernel`): resolve the buffers, compute the launch size,
convert every argument to a ctypes word, call. That is about 35-40 us a kernel on this project's 2-core machine. The
nano LoRA step launches 565 kernels: 21 of its 75 ms were dispatch, 54 ms kernels.

`CPUGraph` is that graph for the CPU. When the jit is captured it writes one table of 64-bit words for the batch:

    per kernel: [kernel address, parts, core_id's slot, nargs, arg 0, ..., arg nargs-1]
                 args: the buffers' addresses in the kernel's order, then its variables (core_id as 0)

and each replay patches the addresses of the jit's input buffers into the table and makes one ctypes call,
`minimac_run_kernels(n, table)` (minimac/cpu_threads.py's C_SOURCE), which calls the kernels in order; a kernel that
tinygrad split into parts runs them on cpu_threads' pool. Kernels with symbolic variables (the KV cache's position
while decoding) stay outside the graph and keep tinygrad's dispatch, as do copies.

`install()` makes every CPU device use it (`import minimac` calls it; MINIMAC_CPU_GRAPH=0, or JIT=2, keeps
tinygrad's dispatch). It needs cpu_threads' library; without one (no clang, Windows) tinygrad's dispatch stays.

Worked example: any jitted function on the CPU, e.g. `step = TinyJit(lambda a, b: (a @ b).relu().realize())`. Its
third call replays both kernels through one `CPUGraph` and gives the numbers of tinygrad's own replay bit for bit
(tests/test_cpu_graph.py). Profile with JIT=2 to see kernels one by one (`benchmarks/profile_step.py` does).
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

from minimac import cpu_threads

HEADER = 4                                      # kernel, parts, slot, nargs


class CPUGraph(GraphRunner):
    """A batch of a TinyJit's CPU kernels as one table, run by one call into C (see the module docstring)."""

    def __init__(self, linear: UOp, input_uops: tuple[UOp, ...] = ()):
        super().__init__(linear, input_uops)
        words: list[int] = []
        self.patches: list[tuple[int, int]] = []   # (word in the table, input slot): the jit's inputs, set per replay
        for j, ((_, ast, bufs, _), runtime) in enumerate(zip(self.calls, self.runtimes, strict=True)):
            info = ast.arg
            slot = runtime.runtimevars.get("core_id")      # its place among the kernel's arguments
            global_size, _ = info.launch_dims({})
            args = [bufs[i].get_buf(bufs[i].device).va_addr for i in info.globals]
            args += [0 if v is None else v for v in info.vals({})]
            start = len(words) + HEADER
            for pos, input_slot in self.uop_replace[j]:     # pos: the argument's place among the call's buffers
                if pos in info.globals:
                    self.patches.append((start + info.globals.index(pos), input_slot))
            parts = global_size[0] if slot is not None else 1
            words += [runtime.addr, parts, 0 if slot is None else slot, len(args), *args]
        self.table = np.array(words, dtype=np.uint64)
        self.n = len(self.calls)
        self.run = cpu_threads.library().minimac_run_kernels

    def __call__(self, input_uops: tuple[UOp, ...], var_vals: dict[str, int], wait: bool = False) -> float | None:
        for word, input_slot in self.patches:
            buf = input_uops[input_slot].buffer.ensure_allocated()
            self.table[word] = buf.get_buf(buf.device).va_addr
        st = time.perf_counter()
        if self.run(self.n, self.table.ctypes.data) != 0:
            raise RuntimeError("minimac.cpu_graph: a kernel table entry was refused (more than 60 arguments or parts)")
        return time.perf_counter() - st if wait else None

    @staticmethod
    def supports_uop(batch_devs, new_call: UOp) -> bool:
        """Programs on one CPU device, without symbolic variables (their values would change per replay), and not
        compiled by the LVP renderer (which takes its arguments another way)."""
        if not GraphRunner.supports_uop(batch_devs, new_call):
            return False
        info = new_call.src[0].arg
        if any(v.expr not in info.runtimevars for v in info.vars) or info.global_size[0] > 64:
            return False
        return all(not getattr(d, "renderer", None) or type(d.renderer).__name__ != "LVPRenderer" for d in batch_devs)


_tinygrad_init = CPUDevice.__dict__.get("_tinygrad_init", CPUDevice.__init__)  # kept across reloads
CPUDevice._tinygrad_init = _tinygrad_init


def _init_with_graph(self, device: str = ""):
    _tinygrad_init(self, device)
    if _enabled():
        self.graph = CPUGraph


def _enabled() -> bool:
    return os.environ.get("MINIMAC_CPU_GRAPH", "1") != "0" and sys.platform != "win32" \
        and cpu_threads.library() is not None


def install() -> bool:
    """CPU devices opened from now on (and one already open) replay jits through CPUGraph. False when
    MINIMAC_CPU_GRAPH=0, on Windows, or without cpu_threads' library."""
    if os.environ.get("MINIMAC_CPU_GRAPH", "1") == "0" or sys.platform == "win32":
        return False
    CPUDevice.__init__ = _init_with_graph
    for name in Device._opened_devices:
        if name.split(":")[0] == "CPU" and _enabled():
            Device[name].graph = CPUGraph
    return True


def uninstall() -> None:
    """tinygrad's dispatch again, for jits captured from now on (a captured jit keeps its graphs)."""
    CPUDevice.__init__ = _tinygrad_init
    for name in Device._opened_devices:
        if name.split(":")[0] == "CPU":
            Device[name].graph = None
