"""minimac: a small LLaMA-style language model that keeps learning new domains without forgetting old ones.

A teaching implementation on tinygrad. Each module is one concept and maps to one lesson:

    tokenizer   byte-level BPE                                   lesson 01
    norm, rope, attention, feedforward                           lessons 02-05
    model       config presets, transformer, generation          lesson 06
    data, train, metrics   corpora, pretraining, bits per byte   lesson 07
    linear, cpu_tiles, gpu_tiles, cpu_threads, cpu_graph   matmul layouts and speed      lesson 07 (speed)
    lora, replay, ewc      the continual-learning tools          lessons 08-10
    neuro/      brain-inspired controllers                       lessons 13-15
    learner     the orchestrator of continual learning           lesson 11
"""
__version__ = "0.1.0"

from minimac import cpu_graph as _cpu_graph
from minimac import cpu_threads as _cpu_threads
from minimac import cpu_tiles as _cpu_tiles

_cpu_tiles.install()    # faster matmul schedules: CPU tiles, and gpu_tiles on NVIDIA GPUs; MINIMAC_CPU_TILES=0 turns both off
_cpu_threads.install()  # split CPU kernels run on all cores; MINIMAC_CPU_THREADS=0 turns it off
_cpu_graph.install()    # a jitted CPU step replays with one call into C; MINIMAC_CPU_GRAPH=0 turns it off
