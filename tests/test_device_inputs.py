"""device_inputs: a jitted step's inputs written into buffers made once, and what a replayed TinyJit then reads."""
import numpy as np
import pytest
from tinygrad import Tensor, TinyJit

from minimac.device_inputs import DeviceInputs, write_into


def test_a_replayed_jit_reads_what_was_written_into_its_input_buffers():
    inputs, step = DeviceInputs(), TinyJit(lambda x, w: (x.float() * w).sum(-1).realize())
    rng = np.random.default_rng(0)
    first = None
    for k in range(5):                                   # capture, then replays with new values in the same buffers
        x, w = rng.integers(0, 9, (3, 4)).astype(np.int32), rng.standard_normal((3, 4)).astype(np.float32)
        tx, tw = inputs(x, w)
        first = first or (tx, tw)
        assert tx is first[0] and tw is first[1]         # the same tensors every step
        np.testing.assert_allclose(step(tx, tw).numpy(), (x * w).sum(-1), rtol=1e-6)


def test_new_shapes_get_new_tensors_and_a_wrong_size_is_refused():
    inputs = DeviceInputs()
    (a,) = inputs(np.zeros((2, 3), dtype=np.int32))
    (b,) = inputs(np.ones((2, 4), dtype=np.int32))       # another shape: fresh tensors, not a partial write
    assert b is not a and b.numpy().tolist() == [[1] * 4] * 2
    lr = Tensor([0.5]).realize()
    write_into(lr, np.array([0.25]))                     # float64 on the host, cast to the tensor's float32
    assert lr.item() == 0.25
    with pytest.raises(ValueError, match="cannot write an array of 8 bytes into a tensor of shape"):
        write_into(lr, np.array([1.0, 2.0]))
