"""EWC (minimac/ewc.py): the Fisher against closed-form gradients, the penalty and its gradient against numpy float64
(naive per-experience sums), online decay arithmetic, buffers that stay out of training, JIT, files and errors."""
import json

import numpy as np
import pytest
from tinygrad import Context, Tensor, TinyJit
from tinygrad.nn.optim import SGD

from minimac.ewc import EWC, empirical_fisher, normalize_fisher

RNG = np.random.default_rng(0)
SHAPES = [(3, 4), (5,)]


def params_from(arrays):
    return [Tensor(a.astype(np.float32)).realize() for a in arrays]


@pytest.fixture
def theta():
    return [RNG.normal(size=s) for s in SHAPES]


def random_experience(sparsity=0.3):
    fisher = [RNG.random(s) * (RNG.random(s) > sparsity) for s in SHAPES]  # some zeros, as real Fishers have
    anchor = [RNG.normal(size=s) for s in SHAPES]
    return [f.astype(np.float32) for f in fisher], [a.astype(np.float32) for a in anchor]


def naive(theta, experiences, lam):
    """lambda/2 * sum_k sum F_k (theta - a_k)^2 and its gradient lambda * sum_k F_k (theta - a_k), in float64."""
    value = lam / 2 * sum((f.astype(np.float64) * (t - a) ** 2).sum()
                          for fs, anchors in experiences for f, a, t in zip(fs, anchors, theta))
    grads = [lam * sum(fs[i] * (theta[i] - anchors[i]) for fs, anchors in experiences) for i in range(len(theta))]
    return value, grads


# ---- Fisher ----

class LinearRegression:
    """y = x @ w with loss 0.5 * sum (x @ w - y)^2, whose per-row gradient is (x_i @ w - y_i) x_i in closed form."""

    def __init__(self):
        self.w_np = RNG.normal(size=(3,))
        self.w = Tensor(self.w_np.astype(np.float32)).realize()
        self.x, self.y = RNG.normal(size=(6, 3)), RNG.normal(size=(6,))

    def loss(self, batch):
        x, y = batch
        return (0.5 * (x @ self.w - y) ** 2).sum()

    def batches(self, size):
        return [(Tensor(self.x[i:i + size].astype(np.float32)), Tensor(self.y[i:i + size].astype(np.float32)))
                for i in range(0, 6, size)]

    def row_grads(self):
        return (self.x @ self.w_np - self.y)[:, None] * self.x  # (6, 3)


def test_fisher_per_sample_matches_closed_form():
    m = LinearRegression()
    expected = (m.row_grads() ** 2).mean(0)
    fisher = empirical_fisher([m.w], m.loss, m.batches(3), normalize=False)[0].numpy()
    np.testing.assert_allclose(fisher, expected, rtol=1e-5, atol=1e-6)
    normalized = empirical_fisher([m.w], m.loss, m.batches(2))[0].numpy()
    np.testing.assert_allclose(normalized, expected / expected.max(), rtol=1e-5, atol=1e-6)
    assert m.w.grad is None  # loss.gradient, not backward: nothing left in .grad
    first_four = empirical_fisher([m.w], m.loss, m.batches(3), normalize=False, max_samples=4)[0].numpy()
    np.testing.assert_allclose(first_four, (m.row_grads()[:4] ** 2).mean(0), rtol=1e-5, atol=1e-6)


def test_fisher_per_batch_matches_closed_form():
    m = LinearRegression()
    g = m.row_grads()
    batch_grads = g.reshape(3, 2, 3).sum(1)  # the gradient of each batch's summed loss
    expected = (batch_grads ** 2).sum(0) / 6  # sum_b g_b^2 / number of rows
    fisher = empirical_fisher([m.w], m.loss, m.batches(2), per_sample=False, normalize=False)[0].numpy()
    np.testing.assert_allclose(fisher, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("jit", [True, False])
def test_fisher_rows_of_different_lengths(jit):
    """Each row shape gets its own jitted accumulator (a TinyJit fed another length would silently truncate)."""
    w = Tensor([0.5]).realize()
    short, long = RNG.normal(size=(3, 2)), RNG.normal(size=(4, 5))
    batches = [Tensor(short.astype(np.float32)), Tensor(long.astype(np.float32)), Tensor(short.astype(np.float32))]
    fisher = empirical_fisher([w], lambda x: (x * w).sum(), batches, normalize=False, jit=jit)[0].numpy()
    row_grads = np.concatenate([short.sum(1), long.sum(1), short.sum(1)])  # d/dw sum(x * w) = sum(x)
    np.testing.assert_allclose(fisher, [(row_grads ** 2).mean()], rtol=1e-5)


def test_fisher_rows_of_dict_batches_and_unused_params():
    w, unused = Tensor([2.0]).realize(), Tensor([1.0, 1.0]).realize()
    batches = [{"x": Tensor([[1.0], [3.0]])}]
    fisher = empirical_fisher([w, unused], lambda b: (b["x"] * w).sum(), batches, normalize=False)
    np.testing.assert_allclose(fisher[0].numpy(), [(1 + 9) / 2])
    np.testing.assert_allclose(fisher[1].numpy(), [0.0, 0.0])
    np.testing.assert_allclose(normalize_fisher(fisher)[1].numpy(), [0.0, 0.0])  # no division by zero


def test_fisher_errors():
    w = Tensor([1.0]).realize()
    with pytest.raises(ValueError, match="at least one parameter"):
        empirical_fisher([], lambda b: b.sum(), [Tensor([1.0])])
    with pytest.raises(ValueError, match="got no batches"):
        empirical_fisher([w], lambda b: (b * w).sum(), [])
    with pytest.raises(ValueError, match="must return a scalar Tensor"):
        empirical_fisher([w], lambda b: b * w, [Tensor([[1.0]])])
    with pytest.raises(ValueError, match="max_samples must be >= 1"):
        empirical_fisher([w], lambda b: (b * w).sum(), [Tensor([[1.0]])], max_samples=0)
    with pytest.raises(TypeError, match="a batch must be a Tensor"):
        empirical_fisher([w], lambda b: (b * w).sum(), [[1.0, 2.0]])


# ---- penalty ----

def test_separate_mode_equals_naive_sum(theta):
    ewc = EWC(ewc_lambda=7.0, mode="separate")
    params = params_from(theta)
    assert ewc.penalty(params).numpy() == 0.0  # nothing consolidated yet
    experiences = []
    for _ in range(3):
        fisher, anchor = random_experience()
        experiences.append((fisher, anchor))
        ewc.consolidate(params_from(anchor), params_from(fisher))
        value, grads = naive([t for t in theta], experiences, 7.0)
        penalty = ewc.penalty(params)
        assert penalty.shape == ()
        np.testing.assert_allclose(penalty.numpy(), value, rtol=1e-5, atol=1e-5)
        for got, want in zip(penalty.gradient(*params), grads):
            np.testing.assert_allclose(got.numpy(), want, rtol=1e-5, atol=1e-5)
    assert ewc.num_experiences == 3


def test_penalty_is_zero_at_a_single_anchor(theta):
    ewc = EWC()
    fisher, _ = random_experience()
    ewc.consolidate(params_from(theta), params_from(fisher))
    assert abs(ewc.penalty(params_from(theta)).item()) < 1e-6


def test_online_mode_decays_and_reanchors(theta):
    ewc = EWC(ewc_lambda=3.0, mode="online", decay_factor=0.5)
    (f1, a1), (f2, a2) = random_experience(), random_experience()
    ewc.consolidate(params_from(a1), params_from(f1))
    ewc.consolidate(params_from(a2), params_from(f2))
    assert ewc.num_experiences == 1
    stored_f, stored_a = ewc.experiences[0]
    for i in range(len(SHAPES)):
        np.testing.assert_allclose(stored_f[i], 0.5 * f1[i] + f2[i], rtol=1e-6)
        np.testing.assert_allclose(stored_a[i], a2[i])
    value, _ = naive(theta, [([0.5 * f + g for f, g in zip(f1, f2)], a2)], 3.0)
    np.testing.assert_allclose(ewc.penalty(params_from(theta)).numpy(), value, rtol=1e-5, atol=1e-5)


def test_buffers_are_not_parameters_and_stay_out_of_training(theta):
    ewc = EWC(ewc_lambda=10.0)
    fisher, anchor = random_experience()
    params = params_from(theta)
    ewc.consolidate(params_from(anchor), params_from(fisher))
    buffers = ewc.buffers()
    assert all(not b.is_param for b in buffers)
    before = [b.numpy().copy() for b in buffers]
    opt = SGD(params, lr=0.01)
    assert not {id(b) for b in buffers} & {id(p) for p in opt.params}
    start = ewc.penalty(params).item()
    with Context(TRAINING=1):
        for _ in range(3):
            opt.zero_grad()
            ewc.penalty(params).backward()
            opt.step()
    assert ewc.penalty(params).item() < start  # the parameters moved toward the anchors...
    for b, old in zip(ewc.buffers(), before):  # ...and the buffers did not move at all
        np.testing.assert_array_equal(b.numpy(), old)


def test_jitted_penalty_sees_consolidation_and_lambda(theta):
    ewc = EWC(ewc_lambda=2.0)
    params = params_from(theta)

    @TinyJit
    def value():
        return ewc.penalty(params).realize()

    for _ in range(3):  # captured while the buffers are still zero
        assert value().item() == 0.0
    experiences = [random_experience()]
    ewc.consolidate(params_from(experiences[0][1]), params_from(experiences[0][0]))
    np.testing.assert_allclose(value().item(), naive(theta, experiences, 2.0)[0], rtol=1e-5)
    experiences.append(random_experience())
    ewc.consolidate(params_from(experiences[1][1]), params_from(experiences[1][0]))
    ewc.ewc_lambda = 5.0
    np.testing.assert_allclose(value().item(), naive(theta, experiences, 5.0)[0], rtol=1e-5)


@pytest.mark.parametrize("kwargs, match", [({"mode": "both"}, "unknown EWC mode 'both'"),
                                           ({"ewc_lambda": -1.0}, "ewc_lambda must be >= 0"),
                                           ({"decay_factor": 1.5}, r"decay_factor must be in \[0, 1\]"),
                                           ({"decay_factor": -0.1}, r"decay_factor must be in \[0, 1\]")])
def test_constructor_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        EWC(**kwargs)


def test_shape_errors(theta):
    ewc = EWC()
    fisher, anchor = random_experience()
    with pytest.raises(ValueError, match="fisher shapes"):
        ewc.consolidate(params_from(anchor), params_from(fisher[:1]))
    ewc.consolidate(params_from(anchor), params_from(fisher))
    with pytest.raises(ValueError, match=r"penalty: this EWC holds tensors of shapes \[\(3, 4\), \(5,\)\], got \[\(3, 4\)\]"):
        ewc.penalty(params_from(theta[:1]))
    with pytest.raises(ValueError, match="ewc_lambda must be >= 0"):
        ewc.ewc_lambda = -2.0


# ---- state ----

def test_state_dict_and_files_round_trip(tmp_path, theta):
    ewc = EWC(ewc_lambda=4.0, mode="separate")
    for _ in range(2):
        fisher, anchor = random_experience()
        ewc.consolidate(params_from(anchor), params_from(fisher))
    params = params_from(theta)
    expected = ewc.penalty(params).item()
    assert sorted(ewc.state_dict())[:2] == ["experiences.0.anchor.0", "experiences.0.anchor.1"]
    other = EWC(ewc_lambda=4.0)
    other.load_state_dict(ewc.state_dict())
    np.testing.assert_allclose(other.penalty(params).item(), expected, rtol=1e-6)
    ewc.save(tmp_path / "ewc")
    assert sorted(p.name for p in (tmp_path / "ewc").iterdir()) == ["ewc.safetensors", "ewc_config.json"]
    loaded = EWC.load(tmp_path / "ewc")
    assert (loaded.mode, loaded.ewc_lambda, loaded.num_experiences) == ("separate", 4.0, 2)
    np.testing.assert_allclose(loaded.penalty(params).item(), expected, rtol=1e-6)
    other.load_state_dict({})  # back to no penalty, same buffers
    assert other.penalty(params).item() == 0.0


def test_state_and_file_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no ewc_config.json in"):
        EWC.load(tmp_path)
    ewc = EWC(mode="online")
    fisher, anchor = random_experience()
    ewc.consolidate(params_from(anchor), params_from(fisher))
    state = ewc.state_dict()
    with pytest.raises(ValueError, match="missing experiences.0.anchor.1"):
        EWC().load_state_dict({k: v for k, v in state.items() if k != "experiences.0.anchor.1"})
    with pytest.raises(ValueError, match="keys look like"):
        EWC().load_state_dict({"fisher": state["experiences.0.fisher.0"]})
    two = {**state, **{k.replace("experiences.0", "experiences.1"): v for k, v in state.items()}}
    with pytest.raises(ValueError, match="online EWC holds one experience, this state dict has 2"):
        EWC(mode="online").load_state_dict(two)
    small = EWC()
    small.consolidate(params_from([np.ones(2)]), params_from([np.ones(2)]))
    with pytest.raises(ValueError, match="load_state_dict: this EWC holds tensors of shapes"):
        small.load_state_dict(state)
    ewc.save(tmp_path / "e")
    (tmp_path / "e" / "ewc.safetensors").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="ewc.safetensors' is truncated or corrupt"):
        EWC.load(tmp_path / "e")
    (tmp_path / "e" / "ewc_config.json").write_text(json.dumps({"mode": "online"}))
    with pytest.raises(ValueError, match="ewc_config.json is not a valid EWC config"):
        EWC.load(tmp_path / "e")


def test_the_learners_fisher_is_empirical_fisher_per_batch():
    """One estimator, two ways to get its gradients: StepTrainer.fisher (the learner's jitted step replayed at lr 0)
    gives ewc.empirical_fisher(per_sample=False) of the same weighted loss, and moves no weight."""
    from minimac.learner.step import StepTrainer
    from minimac.model import ModelConfig, Transformer
    from minimac.ops import cross_entropy
    Tensor.manual_seed(0)
    model = Transformer(ModelConfig(vocab_size=64, d_model=16, num_layers=1, num_query_heads=2, num_kv_heads=1,
                                    d_ff=32, max_seq_len=16))
    params = model.parameters()
    trainer = StepTrainer(model, params, lr=1e-3, weight_decay=0.0, max_grad_norm=1e9, ewc=EWC(ewc_lambda=1.0))
    rng = np.random.default_rng(0)
    batches = [(rng.integers(0, 64, (2, 8)).astype(np.int32), rng.integers(0, 64, (2, 8)).astype(np.int32),
                rng.uniform(0.5, 1.5, (2, 8)).astype(np.float32)) for _ in range(3)]
    before = [p.numpy().copy() for p in params]
    mine = [f.numpy() for f in trainer.fisher(batches)]
    assert all(np.array_equal(b, p.numpy()) for b, p in zip(before, params))

    def loss(batch):
        x, y, w = batch
        return cross_entropy(model(x), y, weights=w)
    reference = empirical_fisher(params, loss, [tuple(Tensor(a) for a in b) for b in batches], per_sample=False)
    for a, b in zip(mine, reference):   # float32 sums in two graphs: the largest entry, which sets the scale, 0.2%
        np.testing.assert_allclose(a, b.numpy(), rtol=1e-2, atol=1e-6)
    per_row = empirical_fisher(params, loss, [tuple(Tensor(a) for a in b) for b in batches], per_sample=True)
    assert max(np.abs(a - b.numpy()).max() for a, b in zip(mine, per_row)) > 0.05   # another estimator differs
