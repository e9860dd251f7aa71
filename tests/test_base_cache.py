"""The cached base (minimac/base_cache.py): a time-boxed pretraining keeps to its budget when the machine's pace
changes. The clock is faked, so nothing here depends on how fast this machine is."""
from types import SimpleNamespace

import pytest

from minimac import base_cache
from minimac.model import PRESETS

MICRO = {"vocab_size": 512, "d_model": 32, "num_layers": 1, "num_query_heads": 2, "num_kv_heads": 1, "d_ff": 64,
         "max_seq_len": 64}
DOCS = ["The quick brown fox jumps over the lazy dog. " * 40, "Pack my box with five dozen liquor jugs. " * 40]


class SlowingClock:
    """perf_counter for base_cache: each step (a call from its on_step) takes `fast` seconds for the first `switch`
    steps, then `slow` seconds, as on a CPU that other jobs start to share."""

    def __init__(self, fast: float, slow: float, switch: int):
        self.now, self.calls, self.fast, self.slow, self.switch = 0.0, 0, fast, slow, switch

    def perf_counter(self) -> float:
        self.calls += 1
        self.now += self.fast if self.calls <= self.switch else self.slow
        return self.now


@pytest.mark.parametrize("slow", [1.0, 4.0])
def test_a_time_boxed_base_plans_its_length_again_as_the_pace_changes(monkeypatch, tmp_path, slow):
    monkeypatch.setitem(PRESETS, "micro", MICRO)
    monkeypatch.setenv("MINIMAC_CACHE", str(tmp_path))
    monkeypatch.setattr(base_cache, "REPLAN", 5)
    clock = SlowingClock(fast=1.0, slow=slow, switch=20)
    monkeypatch.setattr(base_cache, "time", SimpleNamespace(perf_counter=clock.perf_counter))  # base_cache's only
    said = []
    spec = base_cache.BaseSpec(preset="micro", vocab_size=300, base_seconds=60.0, batch_size=2, seq_len=16)
    folder, built = base_cache.cached_base(spec, DOCS[:1], [DOCS[1:]], say=said.append)
    assert built and (folder / "model.safetensors").is_file()
    steps = int(said[-1].split("base model: ")[1].split(" steps")[0])
    # at 1 s a step the budget holds about 60 steps; once steps take 4 s, about 20 + 40 / 4 = 30
    expected = 60 if slow == 1.0 else 30
    assert abs(steps - expected) <= 6, (steps, said)


def test_a_cached_bases_timings_follow_the_machines_pace_now(monkeypatch):
    """A base built on a busy machine (pace 0.4 s) must not make today's quiet run (0.1 s) look 4x longer."""
    then = {"first_steps_s": 20.0, "pretrain_step_s": 0.28, "final_loss": 3.9, "pace_s": 0.4}
    monkeypatch.setattr(base_cache, "machine_pace", lambda: 0.1)
    now = base_cache.at_current_pace(then)
    assert now["pretrain_step_s"] == pytest.approx(0.07) and now["first_steps_s"] == pytest.approx(5.0)
    assert now["final_loss"] == 3.9 and then["pretrain_step_s"] == 0.28        # a copy; the rest unchanged
    old = {"first_steps_s": 20.0, "pretrain_step_s": 0.28}                     # a base from before the pace was kept
    assert base_cache.at_current_pace(old) == old
