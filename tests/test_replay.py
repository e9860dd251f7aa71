"""Tests for minimac/replay.py: policies' statistics, de-duplication, sampling, save/load and error messages."""
import os

import numpy as np
import pytest

from minimac.replay import POLICIES, Experience, ReplayBuffer


def items(n, domain=None, importance=1.0):
    return [Experience([i, i + 1, 7], importance=importance, domain=domain) for i in range(n)]


# -- Experience ---------------------------------------------------------------------------------------------------

def test_experience_hash_ignores_container_and_ids_are_frozen():
    a, b, c = Experience([1, 2, 3]), Experience((1, 2, 3)), Experience(np.array([1, 2, 3], dtype=np.int64))
    assert a.hash == b.hash == c.hash
    assert a.hash != Experience([1, 2, 4]).hash and a.hash != Experience([1, 2]).hash
    assert a.input_ids.dtype == np.int32 and len(a) == 3
    with pytest.raises(ValueError, match="read-only"):
        a.input_ids[0] = 9
    assert a == b and a != Experience([1, 2, 3], importance=2.0)


@pytest.mark.parametrize("ids, err, msg", [
    ([], ValueError, "non-empty 1-D"),
    ([[1, 2], [3, 4]], ValueError, "non-empty 1-D"),
    ([1.5, 2.0], TypeError, "integer token ids"),
    ([1, -2], ValueError, r"\[0, 2\*\*31\)"),
])
def test_experience_rejects_bad_ids(ids, err, msg):
    with pytest.raises(err, match=msg):
        Experience(ids)


@pytest.mark.parametrize("importance", [-1.0, float("nan"), float("inf")])
def test_experience_rejects_bad_importance(importance):
    with pytest.raises(ValueError, match="importance must be a finite number >= 0"):
        Experience([1], importance=importance)


# -- construction and add -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("mem_size", [0, -3, 2.5, True, "10"])
def test_bad_mem_size(mem_size):
    with pytest.raises(ValueError, match="mem_size must be a positive integer"):
        ReplayBuffer(mem_size)


def test_unknown_policy_lists_the_policies():
    with pytest.raises(ValueError, match="unknown replay policy 'fifo'; choose one of reservoir, importance, uniform"):
        ReplayBuffer(4, policy="fifo")


def test_add_requires_an_experience():
    with pytest.raises(TypeError, match="takes an Experience, got list"):
        ReplayBuffer(4).add([1, 2, 3])


@pytest.mark.parametrize("policy", POLICIES)
def test_never_exceeds_mem_size_and_counts_add_up(policy):
    buf = ReplayBuffer(5, policy=policy, seed=1)
    offered = items(40)
    stored = buf.add_many(offered)
    s = buf.stats()
    assert len(buf) == s["size"] == 5 and s["total_seen"] == 40
    assert s["added"] == stored and s["added"] + s["rejected"] == 40
    assert s["replaced"] == stored - 5


def test_dedup_rejects_stored_copies_unless_allowed():
    buf = ReplayBuffer(10)
    assert buf.add(Experience([1, 2, 3]))
    assert not buf.add(Experience((1, 2, 3), importance=5.0))
    assert buf.stats()["duplicates"] == 1 and buf.total_seen == 1 and len(buf) == 1
    assert buf.add(Experience([1, 2, 3]), allow_duplicates=True) and len(buf) == 2


def test_fix_rejected_item_does_not_block_its_twin_forever():
    # The seed registered the hash before deciding; a rejected item then blocked identical items for good.
    buf = ReplayBuffer(1, policy="importance")
    assert buf.add(Experience([1], importance=2.0))
    assert not buf.add(Experience([5, 6], importance=1.0))  # rejected by the policy ...
    assert not buf.add(Experience([5, 6], importance=1.0))  # ... again by the policy, not as a duplicate
    assert buf.stats()["duplicates"] == 0 and buf.stats()["rejected"] == 2
    assert buf.add(Experience([5, 6], importance=3.0))  # more important now: it gets in
    assert [e.input_ids.tolist() for e in buf.experiences] == [[5, 6]]


def test_evicted_item_can_come_back():
    buf = ReplayBuffer(1, policy="importance")
    buf.add(Experience([1], importance=1.0))
    buf.add(Experience([2], importance=2.0))  # evicts [1], whose hash must be released
    assert buf.add(Experience([1], importance=3.0))


def test_reservoir_keeps_every_item_with_probability_mem_size_over_n():
    # Algorithm R: after N items each one is in the buffer with probability m/N = 5/20 = 0.25, early or late.
    m, N, trials = 5, 20, 2000
    stream = items(N)
    kept = np.zeros(N)
    for seed in range(trials):
        buf = ReplayBuffer(m, policy="reservoir", seed=seed)
        buf.add_many(stream)
        for e in buf.experiences:
            kept[e.input_ids[0]] += 1
    freq = kept / trials  # binomial std sqrt(0.25 * 0.75 / 2000) ~ 0.01
    np.testing.assert_allclose(freq, m / N, atol=0.05)


def test_uniform_keeps_every_new_item_and_leans_to_recent():
    m, N, trials = 5, 20, 500
    stream = items(N)
    kept = np.zeros(N)
    for seed in range(trials):
        buf = ReplayBuffer(m, policy="uniform", seed=seed)
        buf.add_many(stream)
        assert stream[-1] in buf.experiences  # the newest item is always stored
        for e in buf.experiences:
            kept[e.input_ids[0]] += 1
    freq = kept / trials
    # item i survives the (N - 1 - max(i, m - 1)) later additions with probability (1 - 1/m) per addition
    expected = [(1 - 1 / m) ** (N - 1 - max(i, m - 1)) for i in range(N)]
    np.testing.assert_allclose(freq, expected, atol=0.08)
    assert freq[-3:].mean() > 3 * freq[:3].mean()


def test_importance_keeps_the_top_items():
    rng = np.random.default_rng(0)
    imp = rng.permutation(100) + 1.0
    buf = ReplayBuffer(10, policy="importance")
    buf.add_many(Experience([i], importance=w) for i, w in enumerate(imp))
    assert sorted(e.importance for e in buf.experiences) == sorted(imp)[-10:]


def test_importance_rejects_equal_importance_once_full():
    buf = ReplayBuffer(3, policy="importance")
    assert buf.add_many(items(10)) == 3
    assert buf.stats()["rejected"] == 7


def test_add_many_auto_importance_from_loss():
    buf = ReplayBuffer(4)
    buf.add_many([Experience([1], metadata={"loss": 3.5}), Experience([2], metadata={"loss": 40.0}),
                  Experience([3], importance=2.0)], auto_importance=True)
    assert [e.importance for e in buf.experiences] == [3.5, 10.0, 2.0]


# -- sampling -----------------------------------------------------------------------------------------------------

def test_sample_errors():
    buf = ReplayBuffer(4)
    with pytest.raises(ValueError, match="cannot sample from an empty replay buffer"):
        buf.sample(2)
    with pytest.raises(ValueError, match="cannot sample from an empty replay buffer"):
        buf.sample_by_domain(2)
    with pytest.raises(ValueError, match="cannot sample recent experiences"):
        buf.sample_recent(2)
    buf.add(Experience([1]))
    with pytest.raises(ValueError, match="number of samples must be a positive integer, got 0"):
        buf.sample(0)


def test_sample_distinct_and_capped():
    buf = ReplayBuffer(10)
    buf.add_many(items(6))
    out = buf.sample(4)
    assert len({e.hash for e in out}) == 4
    assert len(buf.sample(50)) == 6 and buf.stats()["samples_drawn"] == 10


def test_weighted_sampling_frequency_proportional_to_importance():
    buf = ReplayBuffer(4, seed=3)
    weights = [1.0, 2.0, 3.0, 4.0]
    buf.add_many(Experience([i], importance=w) for i, w in enumerate(weights))
    draws = 8000
    counts = np.zeros(4)
    for _ in range(draws):
        counts[buf.sample(1)[0].input_ids[0]] += 1
    np.testing.assert_allclose(counts / draws, np.array(weights) / 10, atol=0.02)  # std <= 0.0055
    counts[:] = 0
    for _ in range(draws):
        counts[buf.sample(1, weighted=False)[0].input_ids[0]] += 1
    np.testing.assert_allclose(counts / draws, 0.25, atol=0.02)


def test_zero_importance_is_drawn_last_and_does_not_crash():
    buf = ReplayBuffer(5)
    buf.add_many([Experience([0], importance=0.0), Experience([1], importance=0.0), Experience([2], importance=5.0)])
    for _ in range(20):
        got = {e.input_ids[0] for e in buf.sample(2)}
        assert 2 in got and len(got) == 2
    zeros = ReplayBuffer(5)
    zeros.add_many(items(3, importance=0.0))
    assert len(zeros.sample(2)) == 2


def test_sampling_is_deterministic_given_the_seed():
    def run(seed):
        buf = ReplayBuffer(8, policy="reservoir", seed=seed)
        buf.add_many(Experience([i], importance=1 + i % 3) for i in range(30))
        return [e.hash for e in buf.sample(5)] + [e.hash for e in buf.sample_by_domain(4)]
    assert run(7) == run(7)
    assert run(7) != run(8)


def test_sample_by_domain_is_balanced():
    buf = ReplayBuffer(100, seed=0)
    buf.add_many(items(10, "law") + [Experience([100 + i], domain="med") for i in range(3)]
                 + [Experience([200 + i]) for i in range(5)])
    assert buf.domain_counts() == {"law": 10, "med": 3, "unknown": 5}

    def count(exps):
        out = {}
        for e in exps:
            key = e.domain or "unknown"
            out[key] = out.get(key, 0) + 1
        return out
    assert count(buf.sample_by_domain(9)) == {"law": 3, "med": 3, "unknown": 3}
    assert count(buf.sample_by_domain(10)) == {"law": 4, "med": 3, "unknown": 3}  # one extra goes round robin
    assert count(buf.sample_by_domain(10, ["law", "med"])) == {"law": 7, "med": 3}  # med runs out, law makes up
    assert count(buf.sample_by_domain(50, ["med"])) == {"med": 3}
    assert len({e.hash for e in buf.sample_by_domain(18)}) == 18


def test_sample_by_domain_unknown_domain():
    buf = ReplayBuffer(10)
    buf.add_many(items(3, "law"))
    with pytest.raises(ValueError, match=r"no experiences for domain\(s\) \['code'\]; the buffer holds \['law'\]"):
        buf.sample_by_domain(2, ["law", "code"])


def test_recent_window():
    buf = ReplayBuffer(40, policy="importance")
    assert buf.recent.maxlen == 4  # mem_size // 10
    buf.add_many(items(10))
    assert [e.input_ids[0] for e in buf.recent] == [6, 7, 8, 9]
    got = buf.sample_recent(10)
    assert sorted(e.input_ids[0] for e in got) == [6, 7, 8, 9]
    with pytest.raises(ValueError, match="recent_window must be a positive integer"):
        ReplayBuffer(10, recent_window=0)


def test_clear():
    buf = ReplayBuffer(4)
    buf.add_many(items(6))
    buf.clear()
    assert len(buf) == 0 and not buf.recent and buf.total_seen == 0
    assert buf.add(items(1)[0])  # its hash was released


# -- save / load --------------------------------------------------------------------------------------------------

def test_save_load_round_trip(tmp_path):
    buf = ReplayBuffer(6, policy="reservoir", seed=5, recent_window=3)
    buf.add_many([Experience(list(range(i, i + 1 + i % 4)), importance=1 + i, domain=["a", None][i % 2],
                             metadata={"step": i}) for i in range(15)])
    buf.sample(2)
    path = tmp_path / "replay_buffer.npz"
    buf.save(path)
    buf.save(path)  # overwriting works too
    assert os.listdir(tmp_path) == ["replay_buffer.npz"]  # no temp file left behind
    back = ReplayBuffer.load(path)
    assert back.experiences == buf.experiences and list(back.recent) == list(buf.recent)
    assert back.stats() == buf.stats() and back.recent.maxlen == 3
    # the generator state travels too: both continue identically
    assert [e.hash for e in back.sample(3)] == [e.hash for e in buf.sample(3)]
    extra = Experience([999])
    assert back.add(extra) == buf.add(extra)
    assert back.experiences == buf.experiences


def test_save_load_empty(tmp_path):
    ReplayBuffer(3, policy="uniform").save(tmp_path / "b.npz")
    back = ReplayBuffer.load(tmp_path / "b.npz")
    assert len(back) == 0 and back.policy == "uniform"


def test_load_errors_name_the_file(tmp_path):
    missing = tmp_path / "nope.npz"
    with pytest.raises(FileNotFoundError, match="no replay buffer file at .*nope.npz"):
        ReplayBuffer.load(missing)
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip file")
    with pytest.raises(ValueError, match="bad.npz is not a readable minimac replay buffer file"):
        ReplayBuffer.load(bad)
    other = tmp_path / "other.npz"
    np.savez(other, x=np.zeros(3))
    with pytest.raises(ValueError, match="other.npz is not a readable minimac replay buffer file"):
        ReplayBuffer.load(other)


def test_save_rejects_unserialisable_metadata(tmp_path):
    buf = ReplayBuffer(3)
    buf.add(Experience([1], metadata={"when": object()}))
    with pytest.raises(TypeError, match="metadata must be JSON-serialisable"):
        buf.save(tmp_path / "b.npz")
    assert os.listdir(tmp_path) == []
