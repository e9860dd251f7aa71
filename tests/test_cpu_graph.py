"""minimac.fast.cpu_graph: a jitted CPU step replays through CPUGraph, with new inputs each time, and gives the numbers of
tinygrad's own dispatch bit for bit; cached decoding, whose kernels take the position as a symbolic variable, decodes
the same tokens through it; MINIMAC_CPU_GRAPH=0 leaves tinygrad alone."""
import os

import numpy as np
import pytest
from tinygrad import Device, Tensor, TinyJit, nn
from tinygrad.helpers import Context
from tinygrad.nn.optim import AdamW

from minimac.fast import cpu_graph, cpu_threads

pytestmark = pytest.mark.skipif(Device.DEFAULT != "CPU" or os.name == "nt" or cpu_threads.library() is None,
                                reason="the graph applies to tinygrad's CPU backend with minimac's C library")


@pytest.fixture
def graph_runs(monkeypatch):
    """Kernels per CPUGraph replay, in order."""
    runs = []
    call = cpu_graph.CPUGraph.__call__
    monkeypatch.setattr(cpu_graph.CPUGraph, "__call__",
                        lambda self, *a, **k: runs.append(self.n) or call(self, *a, **k))
    return runs


def train(steps: int) -> tuple[list[float], list[np.ndarray]]:
    """A jitted AdamW step of a 2-layer MLP on a new random batch each step: (losses, final weights)."""
    Tensor.manual_seed(0)
    l1, l2 = nn.Linear(64, 256), nn.Linear(256, 10)
    params = nn.state.get_parameters([l1, l2])
    opt = AdamW(params, lr=1e-2)

    @TinyJit
    def step(x, y):
        with Context(TRAINING=1):
            opt.zero_grad()
            loss = l2(l1(x).relu()).sparse_categorical_crossentropy(y).backward()
            opt.step()
            return loss.realize()

    rng = np.random.default_rng(0)
    losses = [step(Tensor(rng.standard_normal((128, 64)).astype(np.float32)), Tensor(rng.integers(0, 10, 128))).item()
              for _ in range(steps)]
    return losses, [p.numpy() for p in params]


def test_a_training_step_replays_through_the_graph_with_tinygrads_numbers(graph_runs):
    assert cpu_graph.install()
    losses, weights = train(6)
    assert len(graph_runs) >= 4 and all(n >= 2 for n in graph_runs)   # replays 2-5, and the capture at step 1
    cpu_graph.uninstall()
    try:
        graph_runs.clear()
        want_losses, want_weights = train(6)
        assert not graph_runs
    finally:
        cpu_graph.install()
    assert losses == want_losses                                       # bit for bit: same kernels, same order
    for got, want in zip(weights, want_weights, strict=True):
        np.testing.assert_array_equal(got, want)


def test_new_inputs_reach_the_kernels(graph_runs):
    assert cpu_graph.install()
    b_np = np.random.default_rng(1).standard_normal((64, 512)).astype(np.float32)
    b = Tensor(b_np).realize()
    step = TinyJit(lambda a: ((a @ b).relu().contiguous() * 2).sum(1).realize())   # two kernels: one graph
    for seed in range(5):
        a_np = np.random.default_rng(seed + 10).standard_normal((256, 64)).astype(np.float32)
        got = step(Tensor(a_np)).numpy()
        np.testing.assert_allclose(got, (np.maximum(a_np @ b_np, 0) * 2).sum(1), rtol=1e-4, atol=1e-3)
    assert graph_runs, "the jit's kernels should have run as one CPUGraph"


def test_cached_decoding_gives_the_same_tokens_through_the_graph(graph_runs):
    from minimac.generate import generate
    from minimac.model import ModelConfig, Transformer

    cfg = ModelConfig.from_preset("nano")
    Tensor.manual_seed(3)
    model = Transformer(cfg)
    prompt = [1, 5, 9, 2, 7]
    assert cpu_graph.install()
    with_graph = generate(model, prompt, max_new_tokens=6, temperature=0.0)
    assert graph_runs, "the decoding jit should replay through CPUGraph"
    cpu_graph.uninstall()
    try:
        Tensor.manual_seed(3)
        without = generate(Transformer(cfg), prompt, max_new_tokens=6, temperature=0.0)
    finally:
        cpu_graph.install()
    assert with_graph == without


def test_switching_off(monkeypatch):
    monkeypatch.setenv("MINIMAC_CPU_GRAPH", "0")
    cpu_graph.uninstall()
    try:
        assert cpu_graph.install() is False
        assert Device["CPU"].graph is None
    finally:
        monkeypatch.delenv("MINIMAC_CPU_GRAPH")
        assert cpu_graph.install() is True
    assert Device["CPU"].graph is cpu_graph.CPUGraph
