"""minimac.fast.cpu_threads: the C pool runs every part of a kernel, on other threads, also after a fork; tinygrad's
THREAD-split kernels go through it and give the numbers of tinygrad's own loop bit for bit; a pool that cannot be
built falls back with a warning; MINIMAC_CPU_THREADS=0 leaves tinygrad alone."""
import ctypes
import os
import subprocess
import threading

import numpy as np
import pytest
from tinygrad import Device, Tensor
from tinygrad.helpers import NUM_CPU_THREADS
from tinygrad.runtime.ops_cpu import CPUProgram

from minimac.fast import cpu_threads

pytestmark = pytest.mark.skipif(Device.DEFAULT != "CPU" or os.name == "nt",
                                reason="the pool applies to tinygrad's CPU backend on POSIX systems")

# a stand-in for a tinygrad kernel: every argument is a 64-bit word, one of them is the part (core_id)
KERNEL = r"""
#include <pthread.h>
#include <stdint.h>
void record(uint64_t *parts, uint64_t *threads, uint64_t part) {
  parts[part] = part + 100;
  threads[part] = (uint64_t)pthread_self();
}
"""


@pytest.fixture(scope="module")
def record(tmp_path_factory):
    path = tmp_path_factory.mktemp("kernel") / "record.so"
    subprocess.run(["clang", "-O2", "-shared", "-fPIC", "-pthread", "-x", "c", "-", "-o", str(path)],
                   input=KERNEL.encode(), check=True)
    lib = ctypes.CDLL(str(path))
    return ctypes.cast(lib.record, ctypes.c_void_p).value


def run_record(kernel: int, parts: int) -> tuple[np.ndarray, np.ndarray]:
    out, threads = np.zeros(parts, np.uint64), np.zeros(parts, np.uint64)
    args = (ctypes.c_uint64 * 3)(out.ctypes.data, threads.ctypes.data, 0)
    assert cpu_threads.pool()(kernel, parts, 2, 3, args) == 0
    return out, threads


@pytest.mark.parametrize("parts", [2, 3, 8])
def test_the_pool_runs_every_part_part_0_in_the_caller(record, parts):
    for _ in range(3):                      # later calls reuse the threads the first one made
        out, threads = run_record(record, parts)
        assert out.tolist() == [p + 100 for p in range(parts)]
        assert len(set(threads.tolist())) == parts              # each part on its own thread
    assert threads[0] == threading.get_ident()                  # part 0 on the calling thread (its pthread_self)


def test_the_pool_refuses_what_it_cannot_hold(record):
    args = (ctypes.c_uint64 * 3)(0, 0, 0)
    assert cpu_threads.pool()(record, 65, 2, 3, args) != 0      # more parts than threads it keeps
    assert cpu_threads.pool()(record, 2, 3, 3, args) != 0       # core_id's slot past the arguments


def test_the_pool_works_in_a_forked_child(record):
    run_record(record, 2)                   # the parent's pool threads exist; a forked child has none of them
    pid = os.fork()
    if pid == 0:
        try:
            out, threads = run_record(record, 2)
            os._exit(0 if out.tolist() == [100, 101] and threads[0] != threads[1] else 1)
        except BaseException:  # noqa: BLE001 - the forked child must never return into pytest
            os._exit(2)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


@pytest.mark.skipif(NUM_CPU_THREADS.value < 2, reason="tinygrad splits kernels only with 2 or more cores")
def test_split_kernels_go_through_the_pool_with_tinygrads_numbers(monkeypatch):
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((256, 64)).astype(np.float32), rng.standard_normal((64, 512)).astype(np.float32)
    calls = []
    built = cpu_threads.pool()
    monkeypatch.setattr(cpu_threads, "pool", lambda: calls.append(1) or built)
    assert cpu_threads.install()
    pooled = (Tensor(a) @ Tensor(b)).numpy()
    assert calls, "a 256 x 64 x 512 matmul should be split over threads and run on the pool"
    cpu_threads.uninstall()
    try:
        calls.clear()
        serial = (Tensor(a) @ Tensor(b)).numpy()
        assert not calls
    finally:
        cpu_threads.install()
    np.testing.assert_array_equal(pooled, serial)
    np.testing.assert_allclose(pooled, a.astype(np.float64) @ b, rtol=1e-5, atol=1e-4)


def test_a_pool_that_cannot_be_built_falls_back_with_a_warning(monkeypatch, tmp_path):
    monkeypatch.setenv("MINIMAC_CACHE", str(tmp_path))         # nothing built there yet
    monkeypatch.setenv("CC", str(tmp_path / "no-such-compiler"))
    monkeypatch.setattr(cpu_threads, "_library", None)
    with pytest.warns(RuntimeWarning, match="could not build the CPU thread pool"):
        assert cpu_threads.pool() is None
    assert cpu_threads.pool() is None                           # decided once: no second warning, no second try
    a = np.arange(64 * 64, dtype=np.float32).reshape(64, 64) / 1000
    np.testing.assert_allclose((Tensor(a) @ Tensor(a)).numpy(), a @ a, rtol=1e-5)   # tinygrad's loop runs it


def test_the_library_is_cached_by_its_source(monkeypatch, tmp_path):
    monkeypatch.setenv("MINIMAC_CACHE", str(tmp_path))
    path = cpu_threads._build()
    assert path.parent == tmp_path and path.exists()
    assert cpu_threads._build() == path and not list(tmp_path.glob("tmp*"))   # built once, no leftovers


def test_switching_off(monkeypatch):
    monkeypatch.setenv("MINIMAC_CPU_THREADS", "0")
    cpu_threads.uninstall()
    try:
        assert cpu_threads.install() is False
        assert CPUProgram.__call__ is cpu_threads._tinygrad_call
    finally:
        monkeypatch.delenv("MINIMAC_CPU_THREADS")
        assert cpu_threads.install() is True
    assert CPUProgram.__call__ is cpu_threads.parallel_call
