"""minimac.fast.cpu_tiles: which kernels get the outer-product tile, that compile workers get it too, that the numbers are
those of numpy, and that MINIMAC_CPU_TILES=0 leaves tinygrad alone."""
import re

import numpy as np
import pytest
from tinygrad import Device, Tensor
from tinygrad.codegen import to_program_cache
from tinygrad.codegen.opt import OptOps

from minimac.fast import cpu_tiles

pytestmark = pytest.mark.skipif(Device.DEFAULT != "CPU", reason="the tiles only apply on tinygrad's CPU backend")


def compiled_reduce_opts() -> list[tuple]:
    """applied_opts of every compiled reduce kernel (name r_...) in tinygrad's in-process program cache."""
    out = []
    for prg in to_program_cache.values():
        info = prg.src[0].arg
        if re.sub(r"\x1b\[[0-9;]*m", "", info.name).startswith("r_"):
            out.append(info.applied_opts)
    return out


def realize_fresh(*tensors: Tensor) -> list[tuple]:
    """Realize (several kernels at once, so tinygrad compiles them in its worker processes) and return the opts."""
    to_program_cache.clear()
    Tensor.realize(*tensors)
    return compiled_reduce_opts()


def is_tile(opts) -> bool:
    """16 columns (UPCAST 4 x 4 on one axis), 4 rows (UPCAST 4 on another), the sum not unrolled."""
    ups = [o for o in opts if o.op is OptOps.UPCAST]
    return [o.arg for o in ups] == [4, 4, 4] and ups[0].axis == ups[1].axis != ups[2].axis \
        and not any(o.op is OptOps.UNROLL for o in opts)


@pytest.fixture(autouse=True)
def installed():
    assert cpu_tiles.install()
    yield


def test_a_matmul_gets_the_tile_and_numpy_numbers():
    rng = np.random.default_rng(0)
    a, b, bias = (rng.standard_normal(s).astype(np.float32) for s in ((40, 24), (24, 64), (64,)))
    out = (Tensor(a) @ Tensor(b)) + Tensor(bias)        # the bias is added after the sum: still a tile
    other = (Tensor(a) * 2).sum(axis=0)                  # a second kernel, so compiling uses the worker processes
    opts = realize_fresh(out, other)
    assert any(is_tile(o) for o in opts), opts
    np.testing.assert_allclose(out.numpy(), a.astype(np.float64) @ b + bias, rtol=1e-5, atol=1e-5)


def test_a_weight_gradient_gets_the_tile():
    """dy^T @ x sums over tokens (minimac.fast.linear's weight gradient, with dy^T copied once): a tile."""
    rng = np.random.default_rng(1)
    x, dy = rng.standard_normal((72, 32)).astype(np.float32), rng.standard_normal((72, 48)).astype(np.float32)
    out = Tensor(dy).transpose().contiguous() @ Tensor(x)          # (48, 72) @ (72, 32): the sum over 72 tokens
    opts = realize_fresh(out, Tensor(x).sum(axis=1))
    assert any(is_tile(o) for o in opts), opts
    np.testing.assert_allclose(out.numpy(), dy.T.astype(np.float64) @ x, rtol=1e-5, atol=1e-5)


def test_a_transposing_copy_is_blocked():
    """y = x^T stored: 16 values along x's rows (whole cache lines), 4 along y's, as one block."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((96, 128)).astype(np.float32)
    to_program_cache.clear()
    y = Tensor(x).transpose().contiguous()
    Tensor.realize(y, Tensor(x).sum(axis=0))
    elementwise = [prg.src[0].arg.applied_opts for prg in to_program_cache.values()
                   if re.sub(r"\x1b\[[0-9;]*m", "", prg.src[0].arg.name).startswith("E_")]
    assert any([(o.op, o.arg) for o in opts if o.op is OptOps.UPCAST] == [(OptOps.UPCAST, 16), (OptOps.UPCAST, 4)]
               for opts in elementwise), elementwise
    np.testing.assert_array_equal(y.numpy(), x.T)


def test_a_dot_product_layout_keeps_tinygrads_heuristic():
    """x @ W^T with W stored (out, in): both operands are contiguous along the sum, so no tile (tinygrad unrolls)."""
    rng = np.random.default_rng(2)
    x, w = rng.standard_normal((44, 28)).astype(np.float32), rng.standard_normal((52, 28)).astype(np.float32)
    out = Tensor(x) @ Tensor(w).transpose()
    opts = realize_fresh(out, Tensor(x).sum(axis=1))
    assert opts and not any(is_tile(o) for o in opts), opts
    assert any(o.op is OptOps.UNROLL for o in opts[0])
    np.testing.assert_allclose(out.numpy(), x.astype(np.float64) @ w.T, rtol=1e-5, atol=1e-5)


def test_gradients_through_linear_match_numpy():
    from minimac.ops import Linear

    rng = np.random.default_rng(3)
    layer = Linear(12, 20, bias=False)
    w = layer.weight.numpy()
    x, dy = rng.standard_normal((3, 5, 12)).astype(np.float32), rng.standard_normal((3, 5, 20)).astype(np.float32)
    tx = Tensor(x)
    gx, gw = (layer(tx) * Tensor(dy)).sum().gradient(tx, layer.weight)
    np.testing.assert_allclose(gx.numpy(), dy.astype(np.float64) @ w, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(gw.numpy(), (dy.reshape(-1, 20).T.astype(np.float64) @ x.reshape(-1, 12)),
                               rtol=1e-5, atol=1e-5)


def test_opting_out_restores_tinygrad_and_installing_again_restores_the_tiles(monkeypatch):
    from tinygrad.codegen.opt import heuristic
    from tinygrad.engine import realize

    monkeypatch.setenv("MINIMAC_CPU_TILES", "0")
    cpu_tiles.uninstall()
    assert cpu_tiles.install() is False
    assert heuristic.hand_coded_optimizations is cpu_tiles._tinygrad_heuristic
    assert realize.get_worker_pool is cpu_tiles._tinygrad_get_worker_pool
    rng = np.random.default_rng(4)
    a, b = rng.standard_normal((36, 16)).astype(np.float32), rng.standard_normal((16, 64)).astype(np.float32)
    out = Tensor(a) @ Tensor(b)
    opts = realize_fresh(out, Tensor(a).sum(axis=0))
    assert opts and not any(is_tile(o) for o in opts), opts
    monkeypatch.delenv("MINIMAC_CPU_TILES")
    assert cpu_tiles.install() is True
    assert heuristic.hand_coded_optimizations is cpu_tiles.hand_coded_optimizations
    assert realize.get_worker_pool is cpu_tiles._get_worker_pool
