"""The training schedule: a run built whole from its plan, then a loop of steps and periodic actions.

``Trainer(...)`` does all the set-up (lock the run folder, prepare the data, resolve the plan, build the
networks, restore a checkpoint) and is usable when it returns; ``run()`` only loops. The arithmetic of a
step lives in ``step``, how a step is taken in ``steppers``, where files go in ``runs``. This is the only
module that knows about ranks: rank 0 alone talks and writes.
"""

from __future__ import annotations

import math
import os
import shutil
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import __version__
from . import checkpoint as ckpt
from .augment import Augmenter, adjust_p, parse_policy
from .config import ModelSpec, TrainConfig, clusters_asked
from .dataset import EpochSampler, PreparedData, prepare_dataset, summary_line
from .devices import OthersBusy, busy_cores_hint, cpu_threads, machine, resolve_device
from .distributed import DistContext, all_mean, barrier, shutdown
from .distributed import init as init_distributed
from .errors import UserError
from .files import write_json
from .graphs import StepGraph, graphs_usable
from .images import make_grid, save_image
from .labels import balanced_weights, class_shares
from .monitor import Monitor, diversity
from .plan import UNTIL_TIME, DataFacts, RunPlan, continue_plan, describe, format_duration, resolve, too_short
from .progress import RunClock, progress_bar
from .rngstate import capture, restore
from .runlog import MetricWindow, RunLog, plot_losses
from .runs import RunFolder, RunLock, prune
from .runstate import build_state, load_weights, pack, unpack, unwrap
from .sampling import generate, precise_bn, precise_bn_seconds, z_from_seeds
from .step import StepOptions, ema_beta_at
from .steppers import AlternateStep, EagerStep, GraphStep, Latents, RealBatches, Stepper

MAX_ROLLBACKS = 3
ADA_INTERVAL = 4  # steps between adjustments of the adaptive augmentation probability
SPEED_REPORT_STEP = 25  # the speed and the time the run will take are stated after this many steps


class TrainingError(UserError):
    """Training cannot start or continue; the message says why (shown without a traceback)."""


@dataclass(frozen=True)
class TrainResult:
    """Where a finished (or stopped) run left its outputs, and why it stopped."""

    run_dir: Path
    step: int
    checkpoint: Path | None
    stop_reason: str  # "steps", "time", "patience", "signal" or "nothing to do"
    elapsed: float  # seconds this command took
    kimg: float  # thousands of real images D has seen over the whole run
    main_process: bool = True  # False on torchrun ranks other than 0, which write nothing

    @property
    def interrupted(self) -> bool:
        return self.stop_reason == "signal"


@dataclass(frozen=True)
class Periodic:
    """Work done every ``every`` steps (and at the last step when ``at_end``)."""

    every: int
    action: Callable[[], Any]
    at_end: bool = True

    def due(self, step: int, last: int) -> bool:
        return bool(self.every) and (step % self.every == 0 or (self.at_end and step == last))


def prepare_run(
    data_dir: str | os.PathLike,
    run_dir: Path,
    request: TrainConfig,
    dist: DistContext,
    device: torch.device,
    say: Callable[[str], None],
    continuing: RunPlan | None = None,
) -> tuple[PreparedData, RunPlan]:
    """Decode (or find) the data and resolve the plan (keeping a resumed run's decisions, see
    ``plan.continue_plan``): the part of set-up that --dry-run shares."""
    if dist.enabled and request.batch_size % dist.world:
        raise TrainingError(
            f"--batch-size {request.batch_size} (the global batch) must be divisible by the {dist.world} processes"
        )
    if dist.enabled and request.d_skip_below is not None:
        raise TrainingError("--d-skip-below is a single-process rule (the tutorial's); drop it under torchrun")
    # Measured across the data preparation below, which then hides the measuring window.
    others = OthersBusy() if device.type == "cpu" and request.threads is None and not dist.enabled else None
    # One process per machine decodes; the others then find the cache.
    if dist.local_rank != 0:
        barrier(dist)
    data = prepare_dataset(
        data_dir,
        request.model.image_size,
        request.data,
        channels=request.model.channels,
        progress=request.progress and dist.is_main,
        exclude=(run_dir,),
        classes=request.classes,
    )
    if dist.local_rank == 0:
        barrier(dist)
    say(summary_line(data.report))
    if request.model.channels == 4 and not data.report.get("transparent"):
        say("warning: --channels 4 keeps transparency, but no picture here has any: training on opaque RGBA")
    if others is not None:
        hint = busy_cores_hint(others.cores(), os.cpu_count() or 1, torch.get_num_threads())
        if hint:
            say(hint)
    if data.labels is not None and (data.labels < 0).any():
        unlabelled = int((data.labels < 0).sum())
        say(f"note: {unlabelled} picture(s) belong to no class and are left out (listed in data_report.json)")
        keep = data.labels >= 0
        data = replace(
            data,
            images=np.asarray(data.images[keep]),
            labels=data.labels[keep],
            files=[f for f, k in zip(data.files, keep) if k],
        )
    draw: tuple[float, ...] = ()
    if clusters_asked(request.classes) and data.labels is not None:
        draw = tuple(float(p) for p in class_shares(data.labels, len(data.class_names)))
    facts = DataFacts(
        images=len(data.images), channels=data.report["channels"], class_names=data.class_names, class_draw=draw
    )
    plan = resolve(request, facts, machine(device, dist.world))
    return data, plan if continuing is None else continue_plan(plan, continuing)


FLAGS = {
    "image_size": "--image-size",
    "channels": "--channels",
    "latent_dim": "--latent-dim",
    "g_width": "--g-width",
    "d_width": "--d-width",
    "max_width_mult": "--max-width-mult",
    "g_depth": "--g-depth",
    "d_depth": "--d-depth",
    "d_head": "--d-head",
    "output": "--output",
    "spectral_norm": "--spectral-norm",
    "class_input": "--class-input",
}


def model_differences(source: ModelSpec, target: ModelSpec) -> str:
    """What differs between a source run's networks and this run's, and the flags that make them match; ''."""
    if source.num_classes != target.num_classes:
        if not source.num_classes or not target.num_classes:
            kind = "class-conditional" if source.num_classes else "unconditional"
            return (
                f"the source model is {kind} and this run is not; a class-conditional model starts only a "
                "class-conditional run with as many classes (--classes), an unconditional one an unconditional run"
            )
        return (
            f"the source model has {source.num_classes} classes and this run {target.num_classes}; classes are "
            "matched by position, so their number must agree"
        )
    differ = [name for name in FLAGS if getattr(source, name) != getattr(target, name)]
    if not differ:
        return ""
    said = ", ".join(f"{name} {getattr(source, name)!r} there, {getattr(target, name)!r} here" for name in differ)
    fix = " ".join(
        (FLAGS[name] if getattr(source, name) is True else f"--no-{FLAGS[name][2:]}")
        if isinstance(getattr(source, name), bool)
        else f"{FLAGS[name]} {getattr(source, name)}"
        for name in differ
    )
    return f"the networks differ ({said}); to match the source, pass {fix}"


class Trainer:
    """One training job into a run folder, built whole: every method works once the constructor returns."""

    def __init__(
        self,
        data_dir: str | os.PathLike,
        run_dir: str | os.PathLike,
        config: TrainConfig,
        resume: bool = False,
        allow_data_change: bool = False,
        say: Callable[[str], None] | None = None,
    ) -> None:
        self.started = time.monotonic()
        self.precise_step = -1  # the step whose weights the sampling G's norms were last re-estimated for
        self.data_dir = Path(data_dir)
        self.folder = RunFolder(Path(run_dir))
        self.dist = DistContext.from_env()
        speak = say or (lambda msg: print(msg, file=sys.stderr))
        self.say: Callable[[str], None] = speak if self.dist.is_main else (lambda msg: None)
        # After torchrun's elastic restart every worker continues from the last checkpoint.
        resume = resume or (self.dist.restarts > 0 and self.folder.latest_checkpoint() is not None)
        self.lock = RunLock(self.folder) if self.dist.is_main else None
        created = not self.folder.path.exists()
        if self.lock is not None:
            self.lock.acquire()
            if self.lock.took_over:
                self.say(f"note: took over the lock of a run that ended without releasing it ({self.lock.took_over})")
        try:
            self._build(config, resume, allow_data_change)
        except BaseException:
            self._release(remove_if_empty=created)
            raise

    # --- set-up ------------------------------------------------------------------------------------
    def _build(self, request: TrainConfig, resume: bool, allow_data_change: bool) -> None:
        resume_from = self.folder.latest_checkpoint() if resume else None
        if resume and resume_from is None:
            raise TrainingError(f"--resume: no checkpoint in {str(self.folder.checkpoints)!r}")
        if not resume and self.folder.latest_checkpoint() is not None:
            raise TrainingError(
                f"{str(self.folder.path)!r} already holds a trained run: add --resume to continue "
                "it, or choose another --out"
            )
        if request.eval_every and self.dist.is_main:
            from .metrics import inception_path

            inception_path(request.inception)  # a missing metrics extra fails before any work
        self.device = init_distributed(self.dist, resolve_device(request.device))
        continuing = self.folder.saved_plan() if resume_from is not None and self.folder.config.exists() else None
        self.data, self.plan = prepare_run(
            self.data_dir, self.folder.path, request, self.dist, self.device, self.say, continuing
        )
        plan = self.plan
        self.images = self._images_on_device()
        use_graphs = plan.cuda_graphs and graphs_usable(plan, self.device, self.dist.enabled, self.images, self.say)
        # A captured Adam step must keep its step count on the device.
        self.state = build_state(plan, self.device, self.dist, capturable=use_graphs and self.device.type == "cuda")
        self.options = StepOptions(
            loss=plan.loss,
            output=plan.model.output,
            amp=plan.amp,
            channels_last=plan.channels_last,
            d_skip_below=plan.d_skip_below,
            r1_weight=plan.r1_gamma / 2 * plan.r1_every,
            simultaneous=plan.simultaneous,
        )
        self.z_gen = torch.Generator(device=self.device).manual_seed(plan.seed)
        # A stream of its own, so that turning augmentation on or off leaves the z stream unchanged.
        self.aug_gen = torch.Generator(device=self.device).manual_seed(plan.seed + 1_000_003 + self.dist.rank)
        start_p = plan.augment_p if plan.augment == "diffaugment" else 0.0
        self.augmenter = Augmenter(parse_policy(plan.augment_policy), start_p, self.aug_gen)
        self.batches = RealBatches(
            self.images,
            self.device,
            self._sampler(),
            self.dist,
            plan.model.output,
            plan.channels_last,
            plan.mirror,
            self.aug_gen,
            labels=self.data.labels,
        )
        latents = Latents(self.z_gen, plan.model.latent_dim, self.device, self.dist, self._class_probabilities())
        self.stepper: Stepper
        if use_graphs:
            self.stepper = GraphStep(
                StepGraph.for_run(self.state, self.options, self.images, plan), self.batches, latents, self.say
            )
        elif plan.alternate:
            self.stepper = AlternateStep(self.state, self.options, self.batches, latents, plan.batch_size)
        else:
            self.stepper = EagerStep(self.state, self.options, self.batches, latents, plan.batch_size)
        # The progress grid: the same z every time; a class-conditional run shows one row per class.
        columns = max(1, plan.grid_size // plan.model.num_classes) if plan.model.num_classes else plan.grid_size
        rows = min(plan.model.num_classes, plan.grid_size) if plan.model.num_classes else 1
        self.fixed_z = z_from_seeds(list(range(columns)) * rows, plan.model.latent_dim)
        self.fixed_classes = torch.arange(rows).repeat_interleave(columns) if plan.model.num_classes else None
        self.grid_columns = columns if plan.model.num_classes else None
        self.step = 0
        self.best_fid = math.inf
        self.evals_since_best = 0
        self.rollbacks = 0
        self.stop_reason: str | None = None
        self._scorer: Any = None
        self.log = RunLog(self.folder.metrics, self.folder.tensorboard) if self.dist.is_main else None
        if resume_from is not None:
            self._restore(resume_from, allow_data_change)  # refuses before anything in the run folder is rewritten
        else:
            if plan.init_from:
                self._start_from(plan.init_from)
            if self.log is not None:
                self.log.truncate_after(0)
        # How varied real images are, the scale against which a collapsed G's grid is judged.
        sample = self.data.images[np.sort(np.random.default_rng(0).permutation(plan.images)[:256])]
        self.monitor = Monitor(plan.loss, plan.steps if plan.steps < UNTIL_TIME else 0, diversity(np.asarray(sample)))
        self.clock = RunClock(plan.time_budget, self.started)
        # Seconds the end of a run takes (its last checkpoint and grid): measured as they are written; before the
        # first checkpoint, guessed (``_end_cost``).
        self._costs = {"samples": 0.1}
        self.last_grid = -1  # the step of the newest progress grid
        self.actions = [
            Periodic(plan.log_every, self._log_row),
            Periodic(plan.sample_every, self.save_samples),
            Periodic(plan.eval_every if self.dist.is_main else 0, self.evaluate),
            Periodic(plan.checkpoint_every, self.save_checkpoint, at_end=False),
        ]
        self.window = MetricWindow()
        if self.dist.is_main:
            write_json(self.folder.report, self.data.report)
            self.folder.save_plan(self.plan)

    def _images_on_device(self) -> np.ndarray | torch.Tensor:
        """The uint8 dataset: on a GPU when it fits in a quarter of free memory, else the memory map."""
        images = self.data.images
        if self.device.type == "cuda":
            free, _ = torch.cuda.mem_get_info(self.device)
            if images.nbytes < free // 4:
                return torch.from_numpy(np.ascontiguousarray(images)).to(self.device)
        return images

    def _class_probabilities(self) -> np.ndarray | None:
        """How often each class comes up among the real images D sees (None: unconditional)."""
        labels = self.data.labels
        if labels is None:
            return None
        if self.plan.balance:
            return np.full(len(self.plan.class_names), 1.0 / len(self.plan.class_names))
        return class_shares(labels, len(self.plan.class_names))

    def _sampler(self, epoch: int = 0, batch: int = 0) -> EpochSampler:
        weights = balanced_weights(self.data.labels) if self.plan.balance and self.data.labels is not None else None
        return EpochSampler(self.plan.images, self.plan.batch_size, self.plan.seed, epoch, batch, weights)

    def _start_from(self, source: str) -> None:
        """--init-from: another run's weights, checked against this run's networks; recorded in the plan."""
        from .runs import resolve_checkpoint

        file = resolve_checkpoint(source)
        record = ckpt.load(file)
        mismatch = model_differences(record.model, self.plan.model)
        if mismatch:
            raise TrainingError(f"--init-from {source}: {mismatch}")
        load_weights(self.state, record.networks)
        self.plan = replace(self.plan, init_from=f"{file} (step {record.step})")
        self.say(
            f"starting from {file} (step {record.step:,}): G, D and the EMA; fresh optimisers"
            + (f"; D's first {self.plan.freeze_d} block(s) frozen" if self.plan.freeze_d else "")
        )

    def _restore(self, path: Path, allow_data_change: bool = True) -> None:
        record = ckpt.load(path)
        saved_classes = tuple(record.plan.get("class_names", ()))
        if saved_classes != self.plan.class_names:
            raise TrainingError(
                f"cannot resume: the classes changed since the checkpoint was written (saved: "
                f"{', '.join(saved_classes) or 'none'}; now: {', '.join(self.plan.class_names) or 'none'})"
            )
        if record.model != self.plan.model:
            saved, now = record.model.__dict__, self.plan.model.__dict__
            diff = ", ".join(f"{k}: saved {saved[k]!r}, now {now[k]!r}" for k in now if saved[k] != now[k])
            raise TrainingError(f"cannot resume: the model settings differ from the checkpoint's ({diff})")
        if record.data_fingerprint != self.data.fingerprint and not allow_data_change:
            raise TrainingError(
                "cannot resume: the data folder changed since the checkpoint was written (pictures "
                "added, removed or changed, or other preprocessing); add --allow-data-change to "
                "continue on the new data"
            )
        unpack(self.state, record.networks)
        restore(self.z_gen, self.aug_gen, record.rng)
        if isinstance(self.stepper, GraphStep):
            self.stepper.reset()  # the optimizers' state tensors (and maybe learning rates) were replaced
        self.augmenter.p = record.augment_p
        self.best_fid, self.evals_since_best = record.best_fid, record.evals_since_best
        self.step = record.step
        self.batches.sampler = self._sampler(record.sampler["epoch"], record.sampler["batch"])
        if self.log is not None:
            self.log.truncate_after(self.step)
        self.say(f"resumed from {path.name} (step {self.step:,}, epoch {record.sampler['epoch']:,})")

    def _release(self, remove_if_empty: bool = False) -> None:
        """Give the run folder back; remove it when this run created it and wrote nothing but the lock."""
        if self.lock is None:
            return
        self.lock.release()
        try:
            if remove_if_empty and {p.name for p in self.folder.path.iterdir()} <= {self.folder.lock.name}:
                shutil.rmtree(self.folder.path, ignore_errors=True)
        except OSError:
            pass

    # --- outputs -----------------------------------------------------------------------------------
    def _record(self) -> ckpt.CheckpointRecord:
        self.sampling_generator(kept=True)  # with --precise-bn the saved EMA carries its own weights' statistics
        return ckpt.CheckpointRecord(
            model=self.plan.model,
            plan=self.plan.to_dict(),
            step=self.step,
            epoch=self.batches.sampler.epoch,
            sampler=self.batches.sampler.position(),
            networks=pack(self.state),
            rng=capture(self.z_gen, self.aug_gen),
            augment_p=float(self.augmenter.p),
            best_fid=self.best_fid,
            evals_since_best=self.evals_since_best,
            data_fingerprint=self.data.fingerprint,
            package_version=__version__,
        )

    def save_checkpoint(self) -> Path:
        """Write the whole state atomically and drop checkpoints beyond --keep."""
        path = self.folder.checkpoint(self.step)
        if not self.dist.is_main:
            return path
        started = time.monotonic()
        try:
            ckpt.save(path, self._record())
        except OSError as e:
            previous = self.folder.latest_checkpoint()
            raise TrainingError(
                f"could not write checkpoint {path.name}: {e.strerror or e}; "
                f"the previous checkpoint {previous or '(none)'} is intact"
            ) from None
        prune(self.folder.checkpoints, self.plan.keep)
        self._costs["checkpoint"] = time.monotonic() - started
        return path

    def sampling_generator(self, kept: bool) -> torch.nn.Module:
        """The generator samples come from: the moving average when there is one. With --precise-bn, where
        its samples are ``kept`` (a checkpoint, a score, the run's last grid), its batch-norm statistics are
        re-estimated for this step's weights; a progress grid between checkpoints does not pay for that (the
        time of 9-20 steps on a 2-core CPU, benchmarks/precise_bn.py) and shows them as they are. Training never reads
        them: the next update copies the live G's over them, so a resumed run stays bit-exact."""
        if self.state.ema is None:
            return unwrap(self.state.generator)
        if kept and self.plan.precise_bn and self.precise_step != self.step:
            model = self.plan.model
            shares = self.plan.class_draw or self._class_probabilities()  # as samples draw them, else as training
            precise_bn(self.state.ema, model.latent_dim, model.num_classes, shares)
            self.precise_step = self.step
        return self.state.ema

    def save_samples(self) -> Path:
        """A grid from the fixed z; the monitor looks at it for a collapsed G."""
        path = self.folder.sample(self.step)
        if not self.dist.is_main:
            return path
        self.last_grid = self.step
        started = time.monotonic()
        last = self.step >= self.plan.steps or self.stop_reason is not None  # the run's last grid
        pixels = generate(self.sampling_generator(last), self.fixed_z, self.plan.model.output, self.fixed_classes)
        # Small images are shown enlarged (nearest neighbour) so a grid is readable at a glance.
        model = self.plan.model
        grid = make_grid(pixels, self.grid_columns, scale=max(1, 64 // min(model.width, model.height)))
        save_image(grid, path, "samples")
        self._costs["samples"] = time.monotonic() - started
        warning = self.monitor.on_grid(self.step, pixels)
        if warning:
            self.say(warning)
        return path

    def evaluate(self) -> dict[str, float]:
        """FID/KID/precision/recall of the sampling generator against the training images; keeps the best."""
        from . import metrics

        plan = self.plan
        if self._scorer is None:
            # The training images are already decoded (memory-mapped): no second scan or decode of the folder.
            self._scorer = metrics.TrainingScorer(
                plan.inception, self.device, self.data.images[: plan.eval_n], plan.eval_n
            )
        model = plan.model
        row = self._scorer(
            self.sampling_generator(kept=True), model.latent_dim, model.output, model.num_classes, plan.class_draw
        )
        if row["fid"] < self.best_fid:
            self.best_fid, self.evals_since_best = row["fid"], 0
            ckpt.save(self.folder.best, self._record())
        else:
            self.evals_since_best += 1
        pr = f", precision {row['precision']:.3f}, recall {row['recall']:.3f}" if "precision" in row else ""
        self.say(
            f"step {self.step:,}: FID {row['fid']:.2f}, KID {row['kid']:.4f} +- {row['kid_std']:.4f}{pr} "
            f"({plan.eval_n} samples; best FID {self.best_fid:.2f})"
        )
        if plan.patience and self.evals_since_best >= plan.patience:
            self.stop_reason = "patience"
            self.say(
                f"stopping early: the best FID ({self.best_fid:.2f}) has not improved for {plan.patience} "
                f"evaluations (--patience {plan.patience})"
            )
        if self.log is not None:
            self.log.log({"step": self.step, "epoch": self.batches.sampler.epoch, **row})
        return row

    def _log_row(self) -> None:
        # d_updated (the share of D updates made) only means something under the tutorial's skip rule.
        hidden = {"d_real_sign", "r1"} | (set() if self.plan.d_skip_below > 0 else {"d_updated"})
        means = self.window.row(
            self.plan.batch_size * (2 if self.plan.alternate else 1),
            lambda v: all_mean(self.dist, v.to(self.device)).item(),
            hidden,
        )
        row = {"step": self.step, "epoch": self.batches.sampler.epoch, **means}
        if self.log is not None:
            self.log.log(row)
        warning = self.monitor.on_row(self.step, row["d_real"], row["d_fake"])
        if warning:
            self.say(warning)

    # --- the loop ----------------------------------------------------------------------------------
    def _one_step(self) -> dict[str, torch.Tensor]:
        plan = self.plan
        aug = self.augmenter if self.augmenter.p > 0 or (plan.augment_adaptive and plan.augment != "none") else None
        r1 = plan.r1_gamma > 0 and self.step % plan.r1_every == 0
        metrics = self.stepper(ema_beta_at(self.step, plan.ema_beta), r1, aug)
        if plan.augment_adaptive and plan.augment == "diffaugment" and (self.step + 1) % ADA_INTERVAL == 0:
            # One sync every few steps: D's confidence on the reals steers the augmentation probability.
            sign = all_mean(self.dist, metrics["d_real_sign"]).item()
            self.augmenter.p = adjust_p(
                float(self.augmenter.p), sign, plan.batch_size * ADA_INTERVAL, target=plan.augment_target
            )
        if plan.augment == "diffaugment":
            metrics["augment_p"] = torch.tensor(self.augmenter.p)
        return metrics

    def _non_finite(self, metrics: dict[str, torch.Tensor], last_path: Path | None) -> None:
        """Stop with a clear message, or (--on-nan rollback) reload the last checkpoint at half the learning rates."""
        where = (
            f"a loss became NaN or infinite at step {self.step + 1} (d_loss {metrics['d_loss'].item()}, "
            f"g_loss {metrics['g_loss'].item()})"
        )
        if self.plan.on_nan == "rollback" and last_path is not None and self.rollbacks < MAX_ROLLBACKS:
            self.rollbacks += 1
            self._restore(last_path)
            for opt in (self.state.opt_g, self.state.opt_d):
                for group in opt.param_groups:
                    group["lr"] *= 0.5
            self.say(
                f"{where}: rolled back to {last_path.name} with learning rates halved "
                f"(rollback {self.rollbacks} of {MAX_ROLLBACKS})"
            )
            return
        raise TrainingError(
            f"{where}; the last good checkpoint is "
            f"{last_path if last_path else 'none (no checkpoint written yet)'}. "
            "Try a lower --lr-d/--lr-g, --loss hinge, or --on-nan rollback."
        )

    def _handle_signal(self, signum: int, frame: Any) -> None:
        if self.stop_reason == "signal":  # a second Ctrl-C: stop now
            raise KeyboardInterrupt
        self.stop_reason = "signal"
        self.say("\nstopping: finishing this step and saving a checkpoint (Ctrl-C again to abort)")

    def _out_of_time(self) -> bool:
        # Stop early enough to write the last checkpoint and grid inside the budget.
        if not self.plan.time_budget:
            return False
        rate = self.clock.steps_per_second()
        next_step = 1 / rate if rate else 0.0
        return self.clock.left() <= next_step + 1.5 * self._end_cost()

    def _end_cost(self) -> float:
        """Seconds the last checkpoint and grid will take. Until a checkpoint has been written its cost is a
        guess, which with --precise-bn includes the re-estimation of the norms (one of its batches timed, once):
        at 128x128 that is the time of about 11 training steps (benchmarks/precise_bn.py), more than a short
        budget has to spare."""
        if "checkpoint" not in self._costs:
            guess = 0.2
            if self.plan.precise_bn and self.state.ema is not None:
                model = self.plan.model
                seconds = precise_bn_seconds(self.state.ema, model.latent_dim, model.num_classes)
                guess += seconds
                if seconds >= 0.1 * self.plan.time_budget:
                    self.say(
                        f"note: re-estimating the norms for the last checkpoint (--precise-bn) takes about "
                        f"{format_duration(seconds)} of the {format_duration(self.plan.time_budget)} budget; "
                        "training stops early to leave room for it"
                    )
            self._costs["checkpoint"] = guess
        return self._costs["checkpoint"] + self._costs["samples"]

    def run(self) -> TrainResult:
        """Train to the plan's end (its steps, its time budget or early stopping); Ctrl-C or SIGTERM saves a
        checkpoint and returns. PyTorch's thread count is set to the plan's for the run and restored after."""
        plan = self.plan
        if self.step >= plan.steps:
            self.say(
                f"nothing to train: the run is at step {self.step:,}, at or past its end ({plan.steps:,} steps); "
                "give a larger --steps (or --kimg, --epochs) to continue it"
            )
            self._release()
            return TrainResult(
                self.folder.path,
                self.step,
                self.folder.latest_checkpoint(),
                "nothing to do",
                self.clock.elapsed(),
                self.step * plan.batch_size / 1000,
                self.dist.is_main,
            )
        installed = []
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                installed.append((sig, signal.signal(sig, self._handle_signal)))
            except ValueError:  # not the main thread (e.g. a notebook worker): no signal handling
                pass
        last_path: Path | None = None
        clean = False
        try:
            with cpu_threads(plan.threads if self.device.type == "cpu" else None):
                self._announce()
                last_path = self._loop()
            clean = True
        finally:
            for sig, old in installed:
                signal.signal(sig, old)
            self.batches.close()
            if self.log is not None:
                self.log.close()
            if self.dist.enabled:
                # DDP's reducer keeps the process group alive: unwrap here, so that the group really ends in
                # shutdown() and not at interpreter exit, where gloo's threads can abort the process.
                s = self.state
                s.generator, s.discriminator = unwrap(s.generator), unwrap(s.discriminator)
            shutdown(self.dist, clean)
            if clean and self.dist.is_main:
                self._write_summary(last_path)
            if self.stop_reason != "signal" and self.dist.is_main and clean:
                from .report import write_report

                plot_losses(self.folder.metrics, self.folder.losses)
                write_report(self.folder.path)
            self._release()
        reason = self.stop_reason or "steps"
        result = TrainResult(
            self.folder.path,
            self.step,
            last_path,
            reason,
            self.clock.elapsed(),
            self.step * plan.batch_size / 1000,
            self.dist.is_main,
        )
        return result

    def _write_summary(self, checkpoint: Path | None) -> None:
        """summary.json: what this command reached, where and how fast (the report and the page read it)."""
        import platform

        from .devices import cpu_kind

        plan, elapsed = self.plan, self.clock.elapsed()
        trained = self.clock.seen * plan.batch_size
        write_json(
            self.folder.path / "summary.json",
            {
                "step": self.step,
                "thousand_images_shown_to_d": round(self.step * plan.batch_size / 1000, 1),
                "stopped_by": {
                    "steps": "its length",
                    "time": "--time",
                    "patience": "--patience",
                    "signal": "a signal (Ctrl-C)",
                }.get(self.stop_reason or "steps"),
                "this_command_took": format_duration(elapsed),
                "images_per_second": round(trained / max(elapsed, 1e-9), 1),
                "device": (
                    f"cpu: {cpu_kind()}, {plan.threads} thread(s)" if self.device.type == "cpu" else str(self.device)
                ),
                "precision": "bf16 autocast" if plan.amp else "fp32",
                "checkpoint": None if checkpoint is None else checkpoint.name,
                "versions": f"dcgan {__version__}, torch {torch.__version__}, Python {platform.python_version()}",
            },
        )

    def _announce(self) -> None:
        plan = self.plan
        n = torch.get_num_threads()
        where = f"cpu with {n} thread{'s' if n != 1 else ''}" if self.device.type == "cpu" else str(self.device)
        for note in plan.notes:
            self.say(note)
        warning = too_short(plan)
        if warning:
            self.say(warning)
        length = f"{plan.steps - self.step:,} steps" if plan.steps < UNTIL_TIME else "until the time budget ends"
        if self.step:
            length += f" (from step {self.step:,} to {plan.steps:,})" if plan.steps < UNTIL_TIME else ""
        budget = f", at most {format_duration(plan.time_budget)}" if plan.time_budget else ""
        self.say(
            f"training {length}{budget} on {where} (batch {plan.batch_size}, {plan.model.width}x{plan.model.height}px, "
            f"{plan.model.channels} channel(s), loss {plan.loss}, amp {'bf16' if plan.amp else 'off'}) "
            f"-> {self.folder.path}"
        )

    def _report_speed(self) -> None:
        rate = self.clock.steps_per_second()
        if not rate:
            return
        plan = self.plan
        images = rate * plan.batch_size
        if plan.steps < UNTIL_TIME:
            eta = self.clock.eta(plan.steps - self.step)
            fits = (
                "" if eta is None or not plan.time_budget or eta < self.clock.left() else " (the time budget ends it)"
            )
            self.say(f"speed: {images:,.0f} images/s; about {format_duration(eta or 0)} left{fits}")
        else:
            steps = int(self.step + rate * max(0.0, self.clock.left()))
            self.say(
                f"speed: {images:,.0f} images/s; about {steps:,} steps ({steps * plan.batch_size / 1000:,.0f} "
                f"thousand images) fit in the {format_duration(plan.time_budget)} budget"
            )

    def _loop(self) -> Path | None:
        plan = self.plan
        total = plan.steps if plan.steps < UNTIL_TIME else None
        bar = progress_bar(
            total,
            "",
            plan.progress and self.dist.is_main,
            unit="step",
            leave=True,
            initial=self.step,
            bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}{postfix}]"
            if total
            else "{n_fmt} steps [{elapsed}{postfix}]",
        )
        last_path = self.folder.latest_checkpoint()
        self.window.clear()
        try:
            while self.step < plan.steps:
                metrics = self._one_step()
                wants_stop = self.stop_reason is not None or self._out_of_time()
                check = torch.stack(
                    [
                        metrics["d_loss"].float(),
                        metrics["g_loss"].float(),
                        torch.tensor(float(wants_stop), device=self.device),
                    ]
                )
                check = all_mean(self.dist, check)  # every rank takes the same decisions
                if not all(math.isfinite(v) for v in check[:2].tolist()):
                    self._non_finite(metrics, last_path)
                    self.window.clear()
                    bar.n = self.step
                    bar.refresh()
                    continue
                self.step += 1
                self.clock.tick()
                self.window.add(metrics)
                bar.update()
                for periodic in self.actions:
                    if periodic.due(self.step, plan.steps):
                        result = periodic.action()
                        if periodic.action == self.save_checkpoint:
                            last_path = result
                if self.clock.seen == SPEED_REPORT_STEP:
                    self._report_speed()
                if self.step % 10 == 0:
                    eta = self.clock.eta(plan.steps - self.step)
                    bar.set_postfix_str(f"eta {format_duration(eta)}" if eta is not None else "", refresh=False)
                if check[2].item() > 0:  # this rank or another wants to stop: a signal, the budget, patience
                    self.stop_reason = self.stop_reason or "time"
                    break
        finally:
            bar.close()
        # The end of the run, a time budget spent, or a Ctrl-C between steps: the state is consistent, save it.
        if self.window.count:
            self._log_row()
        if self.last_grid != self.step and self.stop_reason != "signal":
            self.save_samples()
        last_path = self.save_checkpoint()
        if self.stop_reason == "signal":
            self.say(f"saved {last_path} at step {self.step:,}; continue with --resume")
        return last_path


def dry_run(
    data_dir: str | os.PathLike,
    run_dir: str | os.PathLike,
    config: TrainConfig,
    resume: bool = False,
    say: Callable[[str], None] | None = None,
) -> str:
    """What ``dcgan train`` would do, with the time it would take measured over a few steps; writes nothing
    into the run folder (the data cache is built, as training would)."""
    speak = say or (lambda msg: print(msg, file=sys.stderr))
    dist = DistContext()
    device = resolve_device(config.device)
    folder = RunFolder(Path(run_dir))
    continuing = folder.saved_plan() if resume and folder.config.exists() else None
    data, plan = prepare_run(data_dir, folder.path, config, dist, device, speak, continuing)
    rate = measure_speed(plan, data.images, device, data.labels)
    return describe(plan, rate, where=str(device))


def measure_speed(
    plan: RunPlan, images: np.ndarray, device: torch.device, labels: np.ndarray | None = None, steps: int = 5
) -> float:
    """Images per second of this plan's step on this device, over ``steps`` steps after two to warm up,
    on a throwaway copy of the networks."""
    dist = DistContext()
    with cpu_threads(plan.threads if device.type == "cpu" else None):
        state = build_state(plan, device, dist, capturable=False)
        options = StepOptions(loss=plan.loss, output=plan.model.output, amp=plan.amp, channels_last=plan.channels_last)
        generator = torch.Generator(device=device).manual_seed(0)
        batches = RealBatches(
            images,
            device,
            EpochSampler(plan.images, plan.batch_size, 0),
            dist,
            plan.model.output,
            plan.channels_last,
            plan.mirror,
            generator,
            labels,
        )
        cls = AlternateStep if plan.alternate else EagerStep
        probabilities = None if labels is None else np.bincount(labels) / len(labels)
        latents = Latents(generator, plan.model.latent_dim, device, dist, probabilities)
        stepper = cls(state, options, batches, latents, plan.batch_size)
        augment = Augmenter(parse_policy(plan.augment_policy), 1.0, generator) if plan.augment != "none" else None
        for _ in range(2):
            stepper(0.999, False, augment)
        start = time.perf_counter()
        for _ in range(steps):
            metrics = stepper(0.999, False, augment)
        metrics["g_loss"].item()  # wait for the device
        batches.close()
    return steps * plan.batch_size / (time.perf_counter() - start)


def train(
    data_dir: str | os.PathLike,
    run_dir: str | os.PathLike,
    config: TrainConfig,
    resume: bool = False,
    allow_data_change: bool = False,
    say: Callable[[str], None] | None = None,
) -> TrainResult:
    """Train a DCGAN on a folder of images; see ``Trainer``."""
    return Trainer(data_dir, run_dir, config, resume=resume, allow_data_change=allow_data_change, say=say).run()
