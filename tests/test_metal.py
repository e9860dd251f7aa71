"""minimac on a Metal target without a Mac: tinygrad's emulator (DEV=PYTHON::METAL) runs the kernels that tinygrad
renders for Apple GPUs, in Python. A tiny training step, a LoRA step and cached decoding, with minimac.fast
installed, must give the CPU's numbers; and the device table says what the fast path does there."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from minimac.fast import devices

ROOT = Path(__file__).resolve().parent.parent

SCRIPT = r"""
import json
import numpy as np
import minimac.fast
installed = minimac.fast.install()
from tinygrad import Tensor
from minimac import lora
from minimac.fast.devices import backend, capabilities
from minimac.generate import generate
from minimac.model import ModelConfig, Transformer
from minimac.ops import cross_entropy
from minimac.train import TrainConfig, Trainer
Tensor.manual_seed(0)
cfg = ModelConfig(vocab_size=32, d_model=16, num_layers=1, num_query_heads=2, num_kv_heads=1, d_ff=32, max_seq_len=8)
model = Transformer(cfg)
for t in model.parameters():  # the same weights on every device, whatever its random stream
    t.assign(Tensor(np.random.default_rng(t.numel()).standard_normal(t.shape).astype(np.float32) * 0.2)).realize()
rng = np.random.default_rng(0)
batch = rng.integers(0, 32, (2, 6)).astype(np.int32)
trainer = Trainer(model, TrainConfig(batch_size=2, seq_len=5, warmup_steps=1, max_steps=2), lambda s: batch, jit=False)
train = [trainer.train_step(batch)[0] for _ in range(2)]
lora.inject_lora(model, lora.LoRAConfig(r=2), "a")
params = lora.lora_parameters(model, "a")
for t in params:
    t.assign(Tensor(np.random.default_rng(t.numel() + 1).standard_normal(t.shape).astype(np.float32) * 0.1)).realize()
x, y = Tensor(batch[:, :-1]), Tensor(batch[:, 1:])
loss = cross_entropy(model(x), y)
grads = loss.gradient(*params)
Tensor.realize(loss, *grads)
tokens = generate(model, [1, 2, 3], 4, temperature=0.0)
print(json.dumps({"backend": backend(x), "installed": list(installed), "polynomial_exp": capabilities(x).polynomial_exp,
                  "train": train, "lora_loss": loss.item(), "lora_grads": [g.numpy().tolist() for g in grads],
                  "tokens": tokens}))
"""


def run_on(dev: str) -> dict:
    env = {**os.environ, "DEV": dev, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=900, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_training_lora_and_cached_decoding_on_an_emulated_metal_gpu_match_the_cpu():
    metal, cpu = run_on("PYTHON::METAL"), run_on("CPU")
    assert metal["backend"] == "METAL" and cpu["backend"] == "CPU"
    assert "linear" in metal["installed"] and "attention" in metal["installed"]   # the seams' fast versions run there
    assert not metal["polynomial_exp"] and cpu["polynomial_exp"]                  # ... with METAL's row of the table
    np.testing.assert_allclose(metal["train"], cpu["train"], rtol=1e-4)
    assert metal["train"][1] < metal["train"][0]
    np.testing.assert_allclose(metal["lora_loss"], cpu["lora_loss"], rtol=1e-4)
    for a, b in zip(metal["lora_grads"], cpu["lora_grads"]):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-5)
    assert metal["tokens"] == cpu["tokens"]


def test_the_device_table_declares_what_fast_does_on_metal():
    metal = devices.capabilities("METAL")
    assert not (metal.polynomial_exp or metal.outer_product_tiles or metal.tensor_core_tiles or metal.c_graph)
    assert devices.capabilities("CPU").outer_product_tiles and devices.capabilities("CUDA").tensor_core_tiles
    assert devices.capabilities("SOMETHING_NEW") == devices.OTHER
