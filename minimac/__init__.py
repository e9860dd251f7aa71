"""minimac: a small LLaMA-style language model that keeps learning new domains without forgetting old ones.

A teaching implementation on tinygrad. Each module is one concept and maps to one lesson:

    tokenizer, bpe         byte-level BPE                                   lesson 01
    norm, rope, attention, feedforward                                      lessons 02-05
    model, generate, checkpoint   presets, the transformer, sampling, files lesson 06
    data, train, metrics   corpora, pretraining, bits per byte              lesson 07
    lora, replay, ewc      the continual-learning tools                     lessons 08-10
    learner/               the orchestrator of continual learning           lesson 11
    forgetting             the forgetting benchmark's entry point           lesson 12
    neuro/                 brain-inspired controllers (opt-in experiments)  lessons 13-15
    ops                    the few operations that the speed work replaces (the seam)
    fast/                  the speed work, switched on by minimac.fast.install()   appendix

Importing minimac changes nothing outside minimac: tinygrad behaves as it always does until `minimac.fast.install()`.
"""
__version__ = "0.1.0"
