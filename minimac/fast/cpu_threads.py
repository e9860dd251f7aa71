"""Run tinygrad's thread-split CPU kernels on all cores. Lesson 07 (speed appendix).

tinygrad splits a large CPU kernel into `n` parts with the THREAD opt: the kernel takes a `core_id` argument and
handles the rows of that part. In tinygrad 0.14 its CPU runtime (`runtime/ops_cpu.py: CPUProgram.__call__`) then runs
the parts one after the other, in the calling thread:

    for tid in range(global_size[0]): ...; self.fxn(*args with core_id = tid)

so every kernel runs on one core, while PyTorch uses all of them. Measured on this project's 2-core machine: a
512 x 128 x 4096 matmul took 11.4 ms split in two parts run in turn, and 5.7 ms with the parts on two cores.

`install()` replaces that loop with one call into a small thread pool written in C (`C_SOURCE`, compiled with the
clang that tinygrad's CPU backend already needs, once, into the cache folder):

    minimac_parallel(kernel, n, core_id's slot, args)
        the caller runs part 0; pool threads 1..n-1 run the others; returns when all n are done

The pool's threads wait for work by spinning for a moment (kernels follow each other within microseconds) and then
sleep on a condition variable, so an idle pool costs nothing. Kernels that tinygrad did not split, and every other
device, are untouched. The numbers are the same bit for bit: each part writes its own rows
(tests/test_cpu_threads.py).

Why C and not Python threads: both call the compiled kernel through ctypes, which releases the GIL. But waking a
Python thread and waiting for it takes tens of microseconds per kernel. On the nano LoRA update (125 steps of
8 x 64 tokens) the step took 118 ms run in turn, 88 ms with a Python thread and 75 ms with this pool.

MINIMAC_CPU_THREADS=0 keeps tinygrad's loop. If the pool cannot be built (no clang, Windows), tinygrad's loop is
kept with a warning.

Worked example:

    >>> from minimac.fast import cpu_threads
    >>> cpu_threads.install()    # minimac.fast.install() already did this
    True
    >>> # every THREAD-split CPU kernel now runs its parts on the pool; `cpu_threads.uninstall()` undoes it
"""
from __future__ import annotations

import ctypes
import hashlib
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path

from tinygrad.runtime.ops_cpu import CPUProgram

from minimac.files import atomic_write

C_SOURCE = r"""
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <stdatomic.h>

#define NARGS 60        /* arguments a kernel may take (tinygrad allows 63; more falls back to tinygrad's loop) */
#define MAX_THREADS 64
#define SPINS 20000     /* pause instructions a pool thread spins (about half a millisecond) before it sleeps */
#if defined(__x86_64__) || defined(__i386__)
#define RELAX() __builtin_ia32_pause()
#elif defined(__aarch64__)
#define RELAX() __asm__ volatile("yield")
#else
#define RELAX() ((void)0)
#endif

typedef uint64_t u64;
#define A10 u64, u64, u64, u64, u64, u64, u64, u64, u64, u64
typedef void (*kernel_fn)(A10, A10, A10, A10, A10, A10);   /* tinygrad passes every argument as a 64-bit word */

/* the job: which kernel, its arguments, which one is core_id, how many parts */
static kernel_fn job_fn;
static u64 job_args[NARGS];
static int job_slot, job_parts;
static atomic_uint generation;           /* bumped once per job: pool threads wait for it to change */
static atomic_int unfinished;            /* pool threads still working on the current job */
static int pool_size = 1;                /* threads that take part, the caller included */
static int sleepers, fork_handler_set;
static unsigned created_at[MAX_THREADS];  /* the generation when each pool thread was made: it waits for the next */
static pthread_mutex_t sleep_mu = PTHREAD_MUTEX_INITIALIZER, call_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wake = PTHREAD_COND_INITIALIZER;

static void call_kernel(kernel_fn fn, const u64 *a) {   /* a: NARGS words; the kernel reads the ones it takes */
  fn(a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8], a[9], a[10], a[11], a[12], a[13], a[14], a[15], a[16],
     a[17], a[18], a[19], a[20], a[21], a[22], a[23], a[24], a[25], a[26], a[27], a[28], a[29], a[30], a[31], a[32],
     a[33], a[34], a[35], a[36], a[37], a[38], a[39], a[40], a[41], a[42], a[43], a[44], a[45], a[46], a[47], a[48],
     a[49], a[50], a[51], a[52], a[53], a[54], a[55], a[56], a[57], a[58], a[59]);
}

static void run_part(int part) {
  u64 a[NARGS];
  memcpy(a, job_args, sizeof a);
  a[job_slot] = (u64)part;
  call_kernel(job_fn, a);
}

static void *pool_thread(void *arg) {
  int part = (int)(intptr_t)arg;
  unsigned seen = created_at[part];
  for (;;) {
    unsigned now;
    int spins = 0;
    while ((now = atomic_load_explicit(&generation, memory_order_acquire)) == seen) {
      if (++spins < SPINS) { RELAX(); continue; }
      pthread_mutex_lock(&sleep_mu);
      sleepers++;
      while (atomic_load(&generation) == seen) pthread_cond_wait(&wake, &sleep_mu);
      sleepers--;
      pthread_mutex_unlock(&sleep_mu);
    }
    seen = now;
    if (part < job_parts) run_part(part);
    atomic_fetch_sub_explicit(&unfinished, 1, memory_order_release);
  }
  return 0;
}

static void forget_pool_after_fork(void) {   /* a forked child has only the calling thread */
  pool_size = 1; sleepers = 0;
  pthread_mutex_init(&sleep_mu, 0); pthread_mutex_init(&call_mu, 0); pthread_cond_init(&wake, 0);
}

/* Run kernel(args with args[slot] = p) for p = 0..parts-1, part 0 in the calling thread. 0 on success. */
int minimac_parallel(u64 kernel, u64 parts, u64 slot, u64 nargs, const u64 *args) {
  if (parts > MAX_THREADS || nargs > NARGS || slot >= nargs) return -1;
  pthread_mutex_lock(&call_mu);
  if (!fork_handler_set) fork_handler_set = !pthread_atfork(0, 0, forget_pool_after_fork);
  while (pool_size < (int)parts) {
    pthread_t t;
    created_at[pool_size] = atomic_load(&generation);
    if (pthread_create(&t, 0, pool_thread, (void *)(intptr_t)pool_size) != 0) break;
    pthread_detach(t);
    pool_size++;
  }
  if (pool_size < (int)parts) { pthread_mutex_unlock(&call_mu); return -2; }
  job_fn = (kernel_fn)kernel;
  memset(job_args, 0, sizeof job_args);
  memcpy(job_args, args, nargs * sizeof(u64));
  job_slot = (int)slot; job_parts = (int)parts;
  atomic_store(&unfinished, pool_size - 1);
  pthread_mutex_lock(&sleep_mu);
  atomic_fetch_add_explicit(&generation, 1, memory_order_release);
  if (sleepers) pthread_cond_broadcast(&wake);
  pthread_mutex_unlock(&sleep_mu);
  run_part(0);
  while (atomic_load_explicit(&unfinished, memory_order_acquire) > 0) RELAX();
  pthread_mutex_unlock(&call_mu);
  return 0;
}

/* Run n kernels in order (minimac/fast/cpu_graph.py). table holds, per kernel: kernel, parts, core_id's slot, nargs and
   then its nargs arguments. A kernel of one part is called here directly; more parts go to the pool. 0 on success. */
int minimac_run_kernels(u64 n, const u64 *table) {
  for (u64 i = 0; i < n; i++) {
    u64 kernel = table[0], parts = table[1], slot = table[2], nargs = table[3];
    if (nargs > NARGS) return -1;
    if (parts > 1) {
      if (minimac_parallel(kernel, parts, slot, nargs, table + 4) != 0) return -1;
    } else {
      u64 a[NARGS] = {0};
      memcpy(a, table + 4, nargs * sizeof(u64));
      call_kernel((kernel_fn)kernel, a);
    }
    table += 4 + nargs;
  }
  return 0;
}
"""

# tinygrad's original, kept on tinygrad's class so that a second import of this module (importlib.reload) finds it
_tinygrad_call = CPUProgram._tinygrad_call = getattr(CPUProgram, "_tinygrad_call", CPUProgram.__call__)
_library = None        # the loaded library, once built; False when building failed


def library_path() -> Path:
    """Where the compiled pool lives: $MINIMAC_CACHE (default ~/.cache/minimac), named by a hash of C_SOURCE."""
    base = Path(os.environ.get("MINIMAC_CACHE", Path.home() / ".cache" / "minimac"))
    digest = hashlib.sha256((C_SOURCE + sys.platform).encode()).hexdigest()[:16]
    return base / f"cpu_threads-{digest}.so"


def _build() -> Path:
    """Compile C_SOURCE into library_path(), written atomically (parallel test runs may build it at once)."""
    path = library_path()
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    cmd = [os.environ.get("CC", "clang"), "-O2", "-shared", "-fPIC", "-pthread", "-x", "c", "-", "-o"]
    atomic_write(path, lambda tmp: subprocess.run([*cmd, tmp], input=C_SOURCE.encode(), check=True, capture_output=True))
    return path


def library() -> ctypes.CDLL | None:
    """The compiled C_SOURCE, built and loaded on first use; None if that failed (with one warning)."""
    global _library
    if _library is None:
        try:
            lib = ctypes.CDLL(str(_build()))
            lib.minimac_parallel.argtypes = [ctypes.c_uint64] * 4 + [ctypes.c_void_p]
            lib.minimac_run_kernels.argtypes = [ctypes.c_uint64, ctypes.c_void_p]
            lib.minimac_parallel.restype = lib.minimac_run_kernels.restype = ctypes.c_int
            _library = lib
        except (OSError, subprocess.CalledProcessError) as e:
            detail = e.stderr.decode(errors="replace")[-500:] if isinstance(e, subprocess.CalledProcessError) else e
            warnings.warn(f"minimac.fast.cpu_threads: could not build the CPU thread pool ({detail}); CPU kernels run "
                          "their parts one after the other, as tinygrad does", RuntimeWarning, stacklevel=2)
            _library = False
    return _library or None


def pool():
    """The C function `minimac_parallel(kernel, parts, slot, nargs, args)`, or None if the library cannot be built."""
    lib = library()
    return lib.minimac_parallel if lib else None


def parallel_call(self: CPUProgram, *bufs, global_size=(1, 1, 1), local_size=(1, 1, 1), vals=(), wait=False,
                  timeout=None):
    """CPUProgram.__call__ (tinygrad 0.14.0), except that a THREAD-split kernel runs its parts on the pool."""
    slot = self.runtimevars.get("core_id")
    fn = pool() if slot is not None and global_size[0] > 1 and not self.lvp else None
    if fn is not None:
        st = time.perf_counter()
        args = [b.va_addr for b in bufs] + [0 if v is None else v for v in vals]  # core_id is None: the pool sets it
        if fn(self.addr, global_size[0], slot, len(args), (ctypes.c_uint64 * len(args))(*args)) == 0:
            return time.perf_counter() - st if wait else None
    # not split, no pool, or refused by it (more than 64 parts or 60 arguments): tinygrad's loop
    return _tinygrad_call(self, *bufs, global_size=global_size, local_size=local_size, vals=vals, wait=wait,
                          timeout=timeout)


def install() -> bool:
    """Run THREAD-split CPU kernels on the pool from now on (idempotent). False when MINIMAC_CPU_THREADS=0 or on
    Windows, where tinygrad's loop stays."""
    if os.environ.get("MINIMAC_CPU_THREADS", "1") == "0" or sys.platform == "win32":
        return False
    CPUProgram.__call__ = parallel_call
    return True


def uninstall() -> None:
    """Back to tinygrad's loop: each kernel's parts run one after the other in the calling thread."""
    CPUProgram.__call__ = _tinygrad_call
