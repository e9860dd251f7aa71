"""The continual learner: teach a pretrained model new text in seconds, domain after domain, and measure what it
forgets. Lesson 11: the one orchestrator of lessons 07-10.

    learner = ContinualLearner(model, tokenizer, LearnerConfig())   # adapter-per-domain, the default
    learner.learn_from_text("The Zorbian capital is Quixville.", domain="facts")   # -> {loss_before, loss_after, ...}
    learner.learn_stream([("law", law_text), ("med", med_text)], eval_sets=tests)  # fills learner.r_matrix
    learner.generate("The Zorbian capital is")

One `learn_from_text` call, with every FIX from the seed audit:

    ids = [eot] + encode(text), cut into windows of seq_len + 1 tokens (mixing.chunk_ids)  no crash on long text
    steps = the argument, or `epochs` passes over the chunks with at least min_steps       one call really learns
    each step: rows = new chunks (ALWAYS some) + replayed earlier chunks (per-domain balanced) + padding
               weighted CE (targets shifted ONCE) + EWC penalty; clip; AdamW on the trainable tensors only
               (step.StepTrainer: one TinyJit per adapter, fixed (B, T), lr and lambda as Tensors), the lr
               warmed up and decayed within the call (schedule.py); optional early stopping on held-out chunks
               controllers' on_step: only they may change lr / replay ratio / EWC lambda (nothing does silently)
    a nan/inf loss, or nan/inf weights or loss after the LAST update (each step's loss comes before its update),
      puts the weights and optimizer state back as they were before the call, then raises: nothing non-finite is kept
    the new chunks join the replay buffer afterwards, so replay always draws from *earlier* text

Leaves out: the pieces (lora, replay, ewc, metrics), batches (mixing.py), the jitted step (step.py), the lr
schedule and early stopping (schedule.py), routing / evaluation / generation (routing.py), files (checkpoint.py),
the config (strategies.py), the CLI (learn.py).
"""
from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import numpy as np

from minimac import fast, lora, parallel
from minimac.ewc import EWC
from minimac.learner import routing
from minimac.learner.checkpoint import nonfinite
from minimac.learner.hooks import Controller, check_controller_states, controller_states, load_controller_states
from minimac.learner.mixing import chunk_ids, mixed_batch, new_chunk_schedule
from minimac.learner.schedule import EarlyStopping
from minimac.learner.step import StepTrainer, check_arrays, param_groups
from minimac.learner.strategies import LearnerConfig
from minimac.metrics import RMatrix, evaluate
from minimac.replay import Experience, ReplayBuffer
from minimac.train import NonFiniteLossError

MANY_STEPS = 1000  # learn_from_text warns when its default step count is larger than this
FULL = "<full>"    # key of the one trainer of strategy "full"; the other keys are adapter names
SINGLE = "default"  # the adapter of the one-adapter strategies


class ContinualLearner:
    """Learns text domain after domain with the strategy in `config`; evaluates, generates and checkpoints.

    `controllers` (minimac/learner/hooks.py) get on_step, select_replay and on_domain_end calls.
    """

    def __init__(self, model: Any, tokenizer: Any, config: LearnerConfig | None = None,
                 controllers: Iterable[Controller] = (), use_fast: bool = True):
        config = LearnerConfig() if config is None else config
        if use_fast:
            fast.install()   # the same numbers, faster (minimac/fast/); use_fast=False keeps tinygrad untouched
        if not isinstance(config, LearnerConfig):
            raise TypeError(f"config must be a LearnerConfig, got {type(config).__name__}")
        if not hasattr(model, "config") or not hasattr(model, "parameters"):
            raise TypeError(f"model must be a minimac Transformer, got {type(model).__name__}")
        if not callable(getattr(tokenizer, "encode", None)) or not hasattr(tokenizer, "eot_id"):
            raise TypeError(f"tokenizer needs .encode, .decode and .eot_id, got {type(tokenizer).__name__}")
        if config.seq_len > model.config.max_seq_len:
            raise ValueError(f"seq_len {config.seq_len} is longer than the model's max_seq_len "
                             f"{model.config.max_seq_len}")
        if tokenizer.vocab_size > model.config.vocab_size:
            raise ValueError(f"the tokenizer has {tokenizer.vocab_size} ids but the model only "
                             f"{model.config.vocab_size}: they were not made for each other")
        parallel.resolve_devices(config.devices)   # more devices than this machine has: refused before any work
        self.model, self.tokenizer, self.config = model, tokenizer, config
        self.controllers = list(controllers)
        self.replay = ReplayBuffer(config.mem_size, config.policy, seed=config.seed)
        self.rng = np.random.default_rng(config.seed)
        self.learning_rate, self.replay_ratio, self.ewc_lambda = config.lr, config.replay_ratio, config.ewc_lambda
        self.step_count = 0                     # optimizer steps taken, over every call
        self.lr_scales: dict[str, float] = {}   # controllers' factors on config.lr, by controller (neuro/base.py)
        self.domains: list[str] = []            # in order of first appearance
        self.history: list[dict] = []           # one stats dict per learn_from_text call
        self.stages: list[dict] = []            # one {"stage", "scores"} per R-matrix row of learn_stream
        self.r_matrix: RMatrix | None = None
        self.eval_sets: dict[str, str] = {}      # what learn_stream evaluated, saved: a resumed run keeps evaluating it
        self._trainers: dict[str, StepTrainer] = {}
        self._pending_state: dict[str, dict] = {}              # trainer arrays loaded before the trainer exists
        self._fisher_pool: dict[str, list[np.ndarray]] = {}    # chunks per domain, for its Fisher at its end
        if config.uses_lora and not config.per_domain and SINGLE not in lora.adapter_names(model):
            lora.inject_lora(model, self.lora_config, SINGLE)

    @property
    def lora_config(self) -> lora.LoRAConfig:
        return self.config.lora_config

    @property
    def adapters(self) -> list[str]:
        return lora.adapter_names(self.model)

    # ---- knobs for controllers (minimac/learner/hooks.py) ---------------------------------------------------------------
    def set_learning_rate(self, lr: float) -> None:
        if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
            raise ValueError(f"learning rate must be a finite number > 0, got {lr!r}")
        self.learning_rate = float(lr)

    def set_replay_ratio(self, ratio: float) -> None:
        if not (isinstance(ratio, (int, float)) and 0 <= ratio <= 1):
            raise ValueError(f"replay_ratio must be in [0, 1], got {ratio!r}")
        self.replay_ratio = float(ratio)

    def set_ewc_lambda(self, value: float) -> None:
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
            raise ValueError(f"ewc_lambda must be a finite number >= 0, got {value!r}")
        self.ewc_lambda = float(value)
        for trainer in self._trainers.values():
            if trainer.ewc is not None:
                trainer.ewc.ewc_lambda = self.ewc_lambda  # assigned in place: the captured step sees it

    # ---- learning -----------------------------------------------------------------------------------------------
    def _trainer_for(self, domain: str) -> StepTrainer:
        """Activate what `domain` trains (its own adapter under adapter-per-domain) and return its trainer."""
        key = FULL if not self.config.uses_lora else domain if self.config.per_domain else SINGLE
        if key != FULL:
            if key not in self.adapters:
                lora.add_adapter(self.model, key, self.lora_config)
            lora.enable_adapters(self.model)
            lora.set_adapter(self.model, key)
        if key not in self._trainers:
            c = self.config
            ewc = EWC(self.ewc_lambda, c.mode, c.decay_factor) if c.uses_ewc else None
            self._trainers[key] = StepTrainer(self.model, self._trainable(key), self.learning_rate, c.weight_decay,
                                              c.max_grad_norm, ewc, devices=c.devices)
            if key in self._pending_state:
                self._trainers[key].load_arrays(self._pending_state.pop(key))
        return self._trainers[key]

    def _trainable(self, key: str) -> list:
        """What trainer `key` trains: every weight (strategy "full"), else the adapter's tensors in LoRA+ groups."""
        return self.model.parameters() if key == FULL else param_groups(self.model, key, self.config.loraplus_lr_ratio)

    def encode(self, text: str) -> list[int]:
        """[eot] + token ids, like a document in the pretraining stream (so the first real token is predicted too)."""
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        if not text.strip():
            raise ValueError("text is empty (or only whitespace): there is nothing to learn")
        return [self.tokenizer.eot_id, *self.tokenizer.encode(text)]

    def _loss_on(self, ids: list[int]) -> float:
        """Mean next-token loss (nats) over ids, or over its first 4 batches of windows when it is longer."""
        cfg = self.config
        return evaluate(self.model, np.asarray(ids[:4 * cfg.batch_size * cfg.seq_len + 1]), cfg.seq_len,
                        cfg.batch_size)["loss"]

    def learn_from_text(self, text: str, domain: str = "default", importance: float = 1.0, steps: int | None = None,
                        epochs: float | None = None) -> dict:
        """Train on `text` now. Returns loss_before / loss_after (nats per token on the text, its first 4 batches
        of windows if longer), steps, examples (chunks), tokens, seconds, and more.

        Steps: `steps` if given, else LearnerConfig.default_steps: `epochs` (default config.epochs) passes over the
        chunks, at least `min_steps` (a warning above MANY_STEPS). Raises NonFiniteLossError, weights restored, if the
        loss becomes nan/inf, or the weights or the loss after the last update do.
        """
        if not isinstance(domain, str) or not domain:
            raise ValueError(f"domain must be a non-empty str, got {domain!r}")
        if steps is not None and (isinstance(steps, bool) or not isinstance(steps, int) or steps < 1):
            raise ValueError(f"steps must be a positive integer, got {steps!r}")
        if epochs is not None and not (isinstance(epochs, (int, float)) and math.isfinite(epochs) and epochs > 0):
            raise ValueError(f"epochs must be a number > 0, got {epochs!r}")
        ids = self.encode(text)
        Experience(ids, importance, domain)  # checks importance (finite, >= 0) before anything changes
        cfg, t0 = self.config, time.perf_counter()
        all_chunks = chunk_ids(ids, cfg.seq_len)
        n_held = math.floor(len(all_chunks) * cfg.holdout_fraction) if len(all_chunks) > 1 else 0
        chunks, held_ids = all_chunks[:len(all_chunks) - n_held], ids[(len(all_chunks) - n_held) * cfg.seq_len:]
        trainer = self._trainer_for(domain)
        if domain not in self.domains:
            self.domains.append(domain)
        replaying = cfg.uses_replay and len(self.replay) > 0
        new_rows = cfg.batch_size - (cfg.replay_rows(self.replay_ratio) if replaying else 0)
        if steps is None:
            steps = cfg.default_steps(len(chunks), epochs, self.replay_ratio if replaying else 0.0)
            if steps > MANY_STEPS:
                warnings.warn(f"learn_from_text: {len(text):,} characters make {len(chunks):,} chunks, so the default "
                              f"({epochs or cfg.epochs:g} pass over them) is {steps:,} optimizer steps; pass steps= or "
                              "epochs= to choose", stacklevel=2)
        schedule = new_chunk_schedule(len(chunks), new_rows, steps, self.rng)
        loss_before, saved = self._loss_on(ids), trainer.snapshot()
        stopper = EarlyStopping(self, trainer, held_ids if n_held else None, steps)
        losses, seen, step_t0 = [], 0, time.perf_counter()
        for k, rows in enumerate(schedule):
            # a controller may have changed the ratio; the new chunks keep their rows, replay gets the rest
            n_replay = min(cfg.replay_rows(self.replay_ratio), cfg.batch_size - len(rows)) if replaying else 0
            replayed = self._replay_rows(n_replay, [chunks[i] for i in rows])   # the new chunks: a selector's cue
            x, y, w = mixed_batch([chunks[i] for i in rows], [e.input_ids for e in replayed], cfg.batch_size,
                                  cfg.seq_len, self.replay_ratio)
            lr = self.learning_rate * cfg.lr_factor(k, steps)
            task, penalty, norm = trainer.step(x, y, w, lr)
            if not all(math.isfinite(v) for v in (task, penalty, norm)):
                self._undo(trainer, saved, k, f"loss became {task} (EWC penalty {penalty}, grad norm {norm}) at step "
                                              f"{k + 1}/{steps}", domain)
            self.step_count += 1
            losses.append(task)
            seen += int((y != -1).sum())
            elapsed = time.perf_counter() - step_t0
            stats = {"step": k + 1, "steps": steps, "global_step": self.step_count, "loss": task, "ewc": penalty,
                     "grad_norm": norm, "lr": self.learning_rate, "lr_now": lr, "replay_ratio": self.replay_ratio,
                     "replay_rows": len(replayed), "domain": domain, "tokens": seen,
                     "tokens_per_s": seen / max(elapsed, 1e-9), "eta_s": elapsed / (k + 1) * (steps - k - 1)}
            for c in self.controllers:
                c.on_step(self, stats)
            if stopper.check(k + 1):
                break
        stopper.finish(len(losses))   # early stopping: back to the weights that did best on the held-out slice
        # the losses above were each computed BEFORE their update: the last update is checked here, weights and loss
        loss_after = self._loss_on(ids)
        if not math.isfinite(loss_after) or nonfinite(trainer.snapshot()):
            self._undo(trainer, saved, len(losses), f"the last update (step {len(losses)}/{steps}) made the weights or "
                                                    f"the loss non-finite (loss after it: {loss_after})", domain)
        self._store(domain, all_chunks, importance)
        result = {"domain": domain, "adapter": lora.active_adapter(self.model) if cfg.uses_lora else None,
                  "steps": len(losses), "planned_steps": steps, "best_step": stopper.best_step,
                  "holdout_loss": stopper.best, "examples": len(chunks), "tokens": len(ids) - 1, "trained_tokens": seen,
                  "loss_before": loss_before, "loss_after": loss_after, "first_step_loss": losses[0],
                  "last_step_loss": losses[-1], "seconds": time.perf_counter() - t0,
                  "step_seconds": time.perf_counter() - step_t0}
        self.history.append(result)
        return result

    def _undo(self, trainer: StepTrainer, saved: list[np.ndarray], taken: int, what: str, domain: str) -> None:
        """The NaN guard: put the trainable weights and optimizer state back as they were before the call, and raise."""
        trainer.restore(saved)
        self.step_count -= taken
        raise NonFiniteLossError(f"{what} on domain {domain!r} with lr {self.learning_rate:.3g}; the trainable weights "
                                 "and optimizer state were restored to their values before this call, and nothing was "
                                 "saved. Try a lower learning_rate or ewc_lambda.")

    def _replay_rows(self, n: int, new: list[np.ndarray] | None = None) -> list[Experience]:
        if n <= 0:
            return []
        for c in self.controllers:
            chosen = c.select_replay(self, n, new=new)
            if chosen is not None:
                return list(chosen)[:n]
        return self.replay.sample_by_domain(n)

    def _store(self, domain: str, chunks: list[np.ndarray], importance: float) -> None:
        """The chunks join the replay buffer (replay strategies) and a bounded sample for the domain's Fisher."""
        if self.config.uses_replay:
            self.replay.add_many(Experience(c, importance, domain) for c in chunks)
        pool = self._fisher_pool.setdefault(domain, [])
        pool.extend(chunks)
        if len(pool) > 4 * self.config.fisher_samples:
            keep = self.rng.choice(len(pool), 4 * self.config.fisher_samples, replace=False)
            self._fisher_pool[domain] = [pool[i] for i in sorted(keep)]

    def remember(self, text: str, domain: str, importance: float = 1.0) -> int:
        """Keep text of a domain without training on it: its chunks join the replay buffer (replay strategies) and
        the sample for its EWC Fisher. For what the model already knows, e.g. some of the base model's pretraining
        text, so that replay and EWC (after `consolidate(domain)`) protect the base too. Returns the chunk count."""
        if not isinstance(domain, str) or not domain:
            raise ValueError(f"domain must be a non-empty str, got {domain!r}")
        Experience([0], importance, domain)
        chunks = chunk_ids(self.encode(text), self.config.seq_len)
        self._store(domain, chunks, importance)
        if domain not in self.domains:
            self.domains.append(domain)
        return len(chunks)

    def consolidate(self, domain: str) -> None:
        """End of a domain: the EWC Fisher on up to fisher_samples of its chunks (StepTrainer.fisher: replays the
        jitted step, no new compile), then every controller's on_domain_end (the "sleep" slot)."""
        if domain not in self.domains:
            raise ValueError(f"unknown domain {domain!r}; learned so far: {self.domains}")
        pool = self._fisher_pool.pop(domain, [])
        if self.config.uses_ewc and pool:
            cfg, trainer = self.config, self._trainer_for(domain)
            pick = sorted(self.rng.choice(len(pool), min(len(pool), cfg.fisher_samples), replace=False))
            batches = [mixed_batch([pool[j] for j in pick[i:i + cfg.batch_size]], [], cfg.batch_size, cfg.seq_len, 0.0)
                       for i in range(0, len(pick), cfg.batch_size)]
            trainer.ewc.consolidate(trainer.params, trainer.fisher(batches))
        for c in self.controllers:
            c.on_domain_end(self, domain)

    def learn_stream(self, experiences: Iterable[Any], eval_sets: dict[str, str] | None = None,
                     base: str | None = None, steps: int | None = None, epochs: float | None = None,
                     on_stage: Callable[[str, dict], None] | None = None) -> list[dict]:
        """Learn (domain, text) pairs (or objects with .domain and .text) in order; consolidate at each domain change.

        With `eval_sets` ({set name: text}) the R matrix (metrics.RMatrix, bits per byte, lower is better) is
        filled: a row for the model before the stream, then one after each domain. Its sets are [base, the stream's
        domains in order, the other sets (probes)]; `base` names the set standing for what the model knew before
        (default: the first eval set that is not a stream domain); every stream domain needs a set of its own name.
        `r_matrix.summary()` then gives forgetting (last - best, > 0 = forgot), BWT (< 0 = forgot) and FWT
        (> 0 = earlier domains helped). `on_stage(stage, scores)` is called after each row.
        """
        items = [_as_pair(e) for e in experiences]
        order = [d for i, (d, _) in enumerate(items) if i == 0 or items[i - 1][0] != d]
        if len(set(order)) != len(order):
            raise ValueError(f"domain order {order} revisits a domain; group each domain's texts together")
        if eval_sets is not None:
            missing = [d for d in order if d not in eval_sets]
            others = [s for s in eval_sets if s not in order]
            base = base if base is not None else (others[0] if others else None)
            if missing or base not in others:
                raise ValueError(f"eval_sets needs a set for every stream domain and a base set that is not one; "
                                 f"eval sets {list(eval_sets)}, stream domains {order}, base {base!r}")
            stages = [base, *order]
            self.r_matrix = RMatrix(stages, stages + [s for s in others if s != base])
            self.eval_sets.update(eval_sets)
            self._record_stage(base, eval_sets, on_stage)
        out = []
        for i, (domain, text) in enumerate(items):
            out.append(self.learn_from_text(text, domain, steps=steps, epochs=epochs))
            if i + 1 == len(items) or items[i + 1][0] != domain:
                self.consolidate(domain)
                if eval_sets is not None:
                    self._record_stage(domain, eval_sets, on_stage)
        return out

    def _record_stage(self, stage: str, eval_sets: dict[str, str], on_stage) -> None:
        scores = self.evaluate(eval_sets)
        self.r_matrix.append(scores)
        self.stages.append({"stage": stage, "scores": scores})
        if on_stage is not None:
            on_stage(stage, scores)

    # ---- using what was learned (minimac/learner/routing.py) and checkpoints (minimac/learner/checkpoint.py) -----------------
    def route(self, text: str) -> str | None:
        """The adapter (None: bare base) the automatic router picks for `text` (see minimac/learner/routing.py)."""
        return routing.route(self, self.encode(text))

    def evaluate(self, domains: dict[str, str]) -> dict[str, float]:
        """{set name: bits per byte} (lower is better); adapter-per-domain routes each set (see routing.py)."""
        return routing.evaluate(self, domains)

    def stream(self, prompt: str, max_new_tokens: int = 50, temperature: float = 0.8, top_k: int | None = 40,
               top_p: float | None = 0.9, domain: str | None = None, seed: int | None = None) -> Iterator[str]:
        """Yield the continuation of `prompt` in pieces (routing as in `generate`)."""
        return routing.stream(self, prompt, max_new_tokens, temperature, top_k, top_p, domain, seed)

    def generate(self, prompt: str, max_new_tokens: int = 50, temperature: float = 0.8, top_k: int | None = 40,
                 top_p: float | None = 0.9, domain: str | None = None, seed: int | None = None) -> str:
        """The continuation of `prompt` (without the prompt). adapter-per-domain: `domain` picks the adapter by
        name, None routes automatically on the prompt (an empty prompt gets the bare base)."""
        return "".join(self.stream(prompt, max_new_tokens, temperature, top_k, top_p, domain, seed))

    # ---- state: what the learner adds to its model's weights (checkpoint.py writes it to files) ----------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to go on exactly where the learner stopped, besides the model's weights and adapters
        (the model's own state): counters, history, the R matrix, the knobs' values, the RNG state (JSON-able
        values), each trainer's AdamW and EWC arrays ("trainers"), the replay buffer's arrays ("replay"), the chunks
        kept for the next Fisher ("fisher_pool") and each controller's {"class", "state"} ("controllers")."""
        return {"step_count": self.step_count, "domains": list(self.domains), "history": self.history,
                "stages": self.stages, "r_matrix": self.r_matrix.to_dict() if self.r_matrix is not None else None,
                "learning_rate": self.learning_rate, "replay_ratio": self.replay_ratio, "ewc_lambda": self.ewc_lambda,
                "rng": self.rng.bit_generator.state, "lr_scales": dict(self.lr_scales), "eval_sets": self.eval_sets,
                "trainers": {**{k: dict(a) for k, a in self._pending_state.items()},
                             **{k: t.state_arrays() for k, t in self._trainers.items()}},
                "replay": self.replay.state_dict(), "fisher_pool": {d: list(c) for d, c in self._fisher_pool.items()},
                "controllers": controller_states(self.controllers)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Take back what `state_dict()` returned, on a learner built with the same model (adapters loaded), config
        and controllers. ValueError, before anything changes, when a trainer's arrays do not fit the model or a
        controller's state belongs to another class."""
        trainers, saved = state["trainers"], state.get("controllers") or {}
        for key, arrays in trainers.items():
            self._check_trainer_state(key, arrays)
        check_controller_states(self.controllers, saved)
        self._trainers, self._pending_state = {}, {k: dict(a) for k, a in trainers.items()}  # loaded on first use
        self.replay = ReplayBuffer.from_state_dict(state["replay"])
        self._fisher_pool = {d: list(c) for d, c in state["fisher_pool"].items()}
        self.step_count, self.domains = state["step_count"], list(state["domains"])
        self.history, self.stages = state["history"], state["stages"]
        self.eval_sets = dict(state.get("eval_sets") or {})   # absent in checkpoints saved before it was kept
        self.r_matrix = RMatrix.from_dict(state["r_matrix"]) if state.get("r_matrix") else None
        self.rng.bit_generator.state = state["rng"]
        self.set_learning_rate(state["learning_rate"])
        self.set_replay_ratio(state["replay_ratio"])
        self.set_ewc_lambda(state["ewc_lambda"])
        load_controller_states(self.controllers, saved)
        self.lr_scales = {str(k): float(v) for k, v in (state.get("lr_scales") or {}).items()}

    def _check_trainer_state(self, key: str, arrays: dict[str, np.ndarray]) -> None:
        if self.config.uses_lora and key not in self.adapters:
            raise ValueError(f"it has state for trainer {key!r}, but the model has no such adapter (adapters: "
                             f"{self.adapters})")
        check_arrays(key, self._trainable(key), arrays)

    def save_checkpoint(self, directory: str) -> None:
        """Everything, atomically (see minimac/learner/checkpoint.py)."""
        from minimac.learner.checkpoint import save_learner
        if self.config.modules_to_save:  # the checkpoint's base model and trainer state would hold an adapter's copies
            raise ValueError("save_checkpoint does not handle adapters with modules_to_save yet; save each adapter "
                             "with minimac.lora_files.save_adapter(learner.model, DIR, name) instead (nothing was written)")
        save_learner(self, directory)

    @classmethod
    def load_checkpoint(cls, directory: str,
                        controllers: Iterable[Controller] | Callable[[Any], list[Controller]] = ()) -> ContinualLearner:
        """Everything save_checkpoint wrote. `controllers`: a list, or a function model -> list for controllers that
        must wrap the loaded model (homeostasis); their saved state is restored into them."""
        from minimac.learner.checkpoint import load_learner
        return load_learner(directory, controllers, cls)


def _as_pair(e: Any) -> tuple[str, str]:
    if isinstance(e, (tuple, list)) and len(e) == 2:
        return e[0], e[1]
    if hasattr(e, "domain") and hasattr(e, "text"):
        return e.domain, e.text
    raise TypeError(f"each experience must be a (domain, text) pair or have .domain and .text, got {e!r:.80}")
