"""The training schedule: data, steps, progress grids, checkpoints, logs and resume.

The arithmetic of a step lives in ``step``; this module decides when things happen and what is
written where. Run folder layout:

    RUN_DIR/config.json          every setting, enough to rebuild the models
    RUN_DIR/data_report.json     what was done with every file of the data folder
    RUN_DIR/checkpoints/         step-XXXXXXXX.safetensors (whole state; the newest --keep of them)
    RUN_DIR/samples/             step-XXXXXXXX.png grids, always from the same fixed z
    RUN_DIR/metrics.csv          step, epoch, losses, D outputs, images/second
    RUN_DIR/tensorboard/         event files (when tensorboard is installed)
    RUN_DIR/losses.png           the losses against the step, drawn at the end
"""

from __future__ import annotations

import json
import math
import os
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import __version__
from . import checkpoint as ckpt
from .augment import Augmenter, adjust_p, parse_policy, random_flip
from .config import ConfigError, TrainConfig, save_json, to_dict
from .dataset import EpochSampler, prepare_dataset, summary_line
from .devices import OthersBusy, busy_cores_hint, cpu_threads, resolve_device
from .distributed import DistContext, all_mean, barrier, shutdown
from .distributed import init as init_distributed
from .feed import BatchFeed
from .graphs import StepGraph, graphs_usable
from .rngstate import capture, restore
from .runlog import MetricWindow, RunLog, plot_losses
from .runplan import resolve_config, total_steps
from .runstate import build_state, pack, unpack, unwrap
from .sampling import generate, make_grid, save_image, z_from_seeds
from .step import StepOptions, discriminator_step, ema_beta_at, generator_step, to_model_range, train_step

MAX_ROLLBACKS = 3
MIN_GRID_STEPS = 100  # default progress grids: after an epoch, at least this many steps apart
ADA_INTERVAL = 4  # steps between adjustments of the adaptive augmentation probability


class TrainingError(Exception):
    """Training cannot start or continue; the message says why (shown without a traceback)."""


@dataclass(frozen=True)
class TrainResult:
    """Where a finished (or interrupted) run left its outputs."""

    run_dir: Path
    step: int
    checkpoint: Path
    interrupted: bool = False
    main_process: bool = True  # False on torchrun ranks other than 0, which write nothing


def check_writable(run_dir: Path) -> None:
    """Fail before any work when the run folder cannot be created or written."""
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        probe = run_dir / f".write-test-{os.getpid()}"
        probe.write_bytes(b"ok")
        probe.unlink()
    except OSError as e:
        raise TrainingError(f"cannot write to the output folder {str(run_dir)!r}: {e.strerror or e}") from None


class Trainer:
    """Runs one training job into a run folder. Build it, then call ``run()``."""

    def __init__(self, data_dir: str | os.PathLike, run_dir: str | os.PathLike, config: TrainConfig,
                 resume: bool = False, allow_data_change: bool = False,
                 say: Callable[[str], None] | None = None) -> None:
        self.data_dir = Path(data_dir)
        self.run_dir = Path(run_dir)
        self.dist = DistContext.from_env()
        speak = say or (lambda msg: print(msg, file=sys.stderr))
        self.say = speak if self.dist.is_main else (lambda msg: None)  # rank 0 alone talks and writes
        # After torchrun's elastic restart every worker continues from the last checkpoint.
        self.resume = resume or (self.dist.restarts > 0 and ckpt.latest_checkpoint(Path(run_dir) / "checkpoints")
                                 is not None)
        self.allow_data_change = allow_data_change
        self.requested = config
        self._stop_signal: int | None = None
        self.rollbacks = 0
        self.best_fid = math.inf
        self._scorer: Any = None

    # --- setup -------------------------------------------------------------------------------------
    def _setup(self) -> None:
        if self.dist.is_main:
            check_writable(self.run_dir)
            if self.requested.eval_every:
                from .metrics import inception_path

                inception_path(self.requested.inception)  # a missing metrics extra fails before any work
        resume_from = ckpt.latest_checkpoint(self.run_dir / "checkpoints") if self.resume else None
        if self.resume and resume_from is None:
            raise TrainingError(f"--resume: no checkpoint in {str(self.run_dir / 'checkpoints')!r}")
        if not self.resume and ckpt.latest_checkpoint(self.run_dir / "checkpoints") is not None:
            raise TrainingError(f"{str(self.run_dir)!r} already holds a trained run: add --resume to continue it, "
                                "or choose another --out")
        self.device = init_distributed(self.dist, resolve_device(self.requested.device))
        config = self.requested
        # Measured across the data preparation below, which then hides the measuring window.
        others = OthersBusy() if self.device.type == "cpu" and config.threads is None and not self.dist.enabled \
            else None
        if self.dist.enabled:
            if config.batch_size % self.dist.world:
                raise ConfigError(f"--batch-size {config.batch_size} (the global batch) must be divisible by the "
                                  f"{self.dist.world} processes")
            if config.d_skip_below is not None:
                raise ConfigError("--d-skip-below is a single-process rule (the tutorial's); drop it under torchrun")
        # One process per machine decodes; the others then find the cache.
        if self.dist.local_rank != 0:
            barrier(self.dist)
        self.data = prepare_dataset(self.data_dir, config.model.image_size, config.data,
                                    channels=config.model.channels, progress=config.progress and self.dist.is_main)
        if self.dist.local_rank == 0:
            barrier(self.dist)
        self.say(summary_line(self.data.report))
        if others is not None:
            hint = busy_cores_hint(others.cores(), os.cpu_count() or 1, torch.get_num_threads())
            if hint:
                self.say(hint)
        self.config = resolve_config(config, self.data, self.device, self.say)

        cfg = self.config
        self.images = self._images_on_device()
        self.feed = BatchFeed(self.images, self.device)
        use_graphs = cfg.cuda_graphs and graphs_usable(cfg, self.device, self.dist.enabled, self.images, self.say)
        # A captured Adam step must keep its step count on the device.
        self.state = build_state(cfg, self.device, self.dist, capturable=use_graphs and self.device.type == "cuda")
        self.options = StepOptions(loss=cfg.loss, output=cfg.model.output, amp=cfg.amp,
                                   channels_last=cfg.channels_last, d_skip_below=cfg.d_skip_below,
                                   r1_weight=cfg.r1_gamma / 2 * cfg.r1_every)
        self.z_gen = torch.Generator(device=self.device).manual_seed(cfg.seed)
        # A stream of its own, so that turning augmentation on or off leaves the z stream unchanged.
        self.aug_gen = torch.Generator(device=self.device).manual_seed(cfg.seed + 1_000_003 + self.dist.rank)
        try:
            policy = parse_policy(cfg.augment_policy)
        except ValueError as e:
            raise ConfigError(str(e)) from None
        self.adaptive = cfg.augment_p == "auto"
        start_p = 0.0 if self.adaptive else float(cfg.augment_p)
        self.augmenter = Augmenter(policy, start_p if cfg.augment == "diffaugment" else 0.0, self.aug_gen)
        self.sampler = EpochSampler(self.data.report["used"], cfg.batch_size, cfg.seed)
        self.total = total_steps(cfg, self.sampler.batches_per_epoch)
        self.step = 0
        self.fixed_z = z_from_seeds(range(cfg.grid_size), cfg.model.latent_dim)
        self.graph = StepGraph.for_run(self.state, self.options, self.images, cfg, policy) if use_graphs else None
        self.log = RunLog(self.run_dir) if self.dist.is_main else None
        if resume_from is not None:
            self._restore(resume_from)  # refuses before anything in the run folder is rewritten
        elif self.log is not None:
            self.log.truncate_after(0)
        if self.dist.is_main:
            with open(self.run_dir / "data_report.json", "w", encoding="utf-8") as f:
                json.dump(self.data.report, f, indent=1, ensure_ascii=False)
            save_json(self.config, str(self.run_dir / "config.json"))

    def _images_on_device(self) -> np.ndarray | torch.Tensor:
        """The uint8 dataset: on a GPU when it fits in a quarter of free memory, else the memory map."""
        images = self.data.images
        if self.device.type == "cuda":
            free, _ = torch.cuda.mem_get_info(self.device)
            if images.nbytes < free // 4:
                return torch.from_numpy(np.ascontiguousarray(images)).to(self.device)
        return images

    def _restore(self, path: Path) -> None:
        try:
            state = ckpt.load(path)
        except ckpt.CheckpointError as e:
            raise TrainingError(str(e)) from None
        saved_model = state["config"]["model"]
        if saved_model != to_dict(self.config.model):
            diff = {k: (saved_model.get(k), v) for k, v in to_dict(self.config.model).items()
                    if saved_model.get(k) != v}
            raise TrainingError("cannot resume: the model settings differ from the checkpoint's "
                                + ", ".join(f"{k}: saved {a!r}, now {b!r}" for k, (a, b) in diff.items()))
        if state["data_fingerprint"] != self.data.fingerprint and not self.allow_data_change:
            raise TrainingError("cannot resume: the data folder changed since the checkpoint was written "
                                "(files added, removed or modified, or other preprocessing); "
                                "add --allow-data-change to continue on the new data")
        unpack(self.state, state)
        restore(self.z_gen, self.aug_gen, state["rng"])
        if self.graph is not None:
            self.graph.reset()  # the optimizers' state tensors (and maybe learning rates) were replaced
        self.augmenter.p = state["augment_p"]
        self.best_fid = state.get("best_fid", math.inf)
        self.step = state["step"]
        pos = state["sampler"]
        self.sampler = EpochSampler(self.data.report["used"], self.config.batch_size, self.config.seed,
                                    epoch=pos["epoch"], batch=pos["batch"])
        if self.log is not None:
            self.log.truncate_after(self.step)
        self.say(f"resumed from {path.name} (step {self.step}, epoch {pos['epoch']})")

    # --- outputs -----------------------------------------------------------------------------------
    def _checkpoint_state(self) -> dict[str, Any]:
        return {
            "package_version": __version__,
            "config": to_dict(self.config),
            "step": self.step,
            "epoch": self.sampler.epoch,
            "sampler": self.sampler.position(),
            **pack(self.state),
            "rng": capture(self.z_gen, self.aug_gen),
            "augment_p": self.augmenter.p,
            "best_fid": self.best_fid,
            "data_fingerprint": self.data.fingerprint,
        }

    def save_checkpoint(self) -> Path:
        """Write the whole state atomically and drop checkpoints beyond --keep."""
        folder = self.run_dir / "checkpoints"
        path = folder / ckpt.checkpoint_name(self.step)
        if not self.dist.is_main:
            return path
        try:
            folder.mkdir(exist_ok=True)
            ckpt.save(path, self._checkpoint_state())
        except OSError as e:
            previous = ckpt.latest_checkpoint(folder)
            raise TrainingError(f"could not write checkpoint {path.name}: {e.strerror or e}; "
                                f"the previous checkpoint {previous or '(none)'} is intact") from None
        ckpt.prune(folder, self.config.keep)
        return path

    def save_samples(self) -> Path:
        """A grid from the fixed z, from the EMA generator when there is one."""
        net = self.state.ema if self.state.ema is not None else unwrap(self.state.generator)
        path = self.run_dir / "samples" / f"step-{self.step:08d}.png"
        if not self.dist.is_main:
            return path
        pixels = generate(net, self.fixed_z, self.config.model.output)
        # Small images are shown enlarged (nearest neighbour) so a grid is readable at a glance.
        save_image(make_grid(pixels, scale=max(1, 64 // self.config.model.image_size)), path)
        return path

    def evaluate(self) -> dict[str, float]:
        """FID/KID of the sampling generator against the training images; keeps best.safetensors."""
        from . import metrics

        cfg = self.config
        if self._scorer is None:
            # The training images are already decoded (memory-mapped): no second scan or decode of the folder.
            self._scorer = metrics.TrainingScorer(cfg.inception, self.device, self.data.images[:cfg.eval_n], cfg.eval_n)
        net = self.state.ema if self.state.ema is not None else unwrap(self.state.generator)
        row = self._scorer(net, cfg.model.latent_dim, cfg.model.output)
        if row["fid"] < self.best_fid:
            self.best_fid = row["fid"]
            folder = self.run_dir / "checkpoints"
            folder.mkdir(exist_ok=True)
            ckpt.save(folder / "best.safetensors", self._checkpoint_state())
        self.say(f"step {self.step}: FID {row['fid']:.2f}, KID {row['kid']:.4f} +- {row['kid_std']:.4f} "
                 f"({cfg.eval_n} samples; best FID {self.best_fid:.2f})")
        return row

    # --- the loop ----------------------------------------------------------------------------------
    def _shard(self, n: int) -> slice:
        # --batch-size is the global batch: each rank takes its own slice of it.
        per_rank = n // self.dist.world
        return slice(self.dist.rank * per_rank, (self.dist.rank + 1) * per_rank)

    def _real_batch(self) -> torch.Tensor:
        idx = self.sampler.next()
        # The batch after this one, for a feed that fetches ahead (a GPU fed from a host memory map).
        upcoming = self.sampler.peek() if self.feed.prefetch else None
        batch = self.feed.get(idx[self._shard(len(idx))],
                              None if upcoming is None else upcoming[self._shard(len(upcoming))])
        real = to_model_range(batch, self.config.model.output, self.config.channels_last)
        if self.config.mirror:
            real = random_flip(real, self.aug_gen)
        return real

    def _z(self, n: int) -> torch.Tensor:
        # Every rank draws the global z batch and keeps its slice, so the stream does not depend on the world size.
        z = torch.randn(n, self.config.model.latent_dim, generator=self.z_gen, device=self.device)
        return z[self._shard(n)]

    def _one_step(self) -> dict[str, torch.Tensor]:
        cfg, bs = self.config, self.config.batch_size
        aug = self.augmenter if self.augmenter.p > 0 or self.adaptive else None
        r1 = cfg.r1_gamma > 0 and self.step % cfg.r1_every == 0
        beta = ema_beta_at(self.step, cfg.ema_beta)
        if self.graph is not None:
            metrics = self.graph.step(self.sampler, self.z_gen, beta, self.augmenter.p)
            if self.graph.failure:
                self.say(f"--cuda-graphs: capture failed ({self.graph.failure}); continuing without graphs")
                self.graph.failure = None
        elif cfg.alternate:
            # The tutorial's schedule: D on one iteration with fresh fakes, G on the next, which takes a
            # batch and uses only its size.
            metrics = discriminator_step(self.state, self._real_batch(), self._z(bs), self.options, augment=aug, r1=r1)
            self.sampler.next()
            metrics.update(generator_step(self.state, self._z(bs), self.options, beta, augment=aug))
        else:
            metrics = train_step(self.state, self._real_batch(), self._z(bs), self.options, beta, augment=aug, r1=r1)
        if self.adaptive and (self.step + 1) % ADA_INTERVAL == 0:
            # One sync every few steps: D's confidence on the reals steers the augmentation probability.
            sign = all_mean(self.dist, metrics["d_real_sign"]).item()
            self.augmenter.p = adjust_p(self.augmenter.p, sign, bs * ADA_INTERVAL,
                                        target=cfg.augment_target)
        if cfg.augment == "diffaugment":
            metrics["augment_p"] = torch.tensor(self.augmenter.p)
        return metrics

    def _non_finite(self, metrics: dict[str, torch.Tensor], last_path: Path | None) -> None:
        """Stop with a clear message, or (--on-nan rollback) reload the last checkpoint at half the learning rates."""
        where = (f"a loss became NaN or infinite at step {self.step + 1} (d_loss {metrics['d_loss'].item()}, "
                 f"g_loss {metrics['g_loss'].item()})")
        if self.config.on_nan == "rollback" and last_path is not None and self.rollbacks < MAX_ROLLBACKS:
            self.rollbacks += 1
            self._restore(last_path)
            for opt in (self.state.opt_g, self.state.opt_d):
                for group in opt.param_groups:
                    group["lr"] *= 0.5
            self.say(f"{where}: rolled back to {last_path.name} with learning rates halved "
                     f"(rollback {self.rollbacks} of {MAX_ROLLBACKS})")
            return
        raise TrainingError(f"{where}; the last good checkpoint is "
                            f"{last_path if last_path else 'none (no checkpoint written yet)'}. "
                            "Try a lower --lr-d/--lr-g, --loss hinge, or --on-nan rollback.")

    def _handle_signal(self, signum: int, frame: Any) -> None:
        if self._stop_signal is not None:  # a second Ctrl-C: stop now
            raise KeyboardInterrupt
        self._stop_signal = signum
        self.say("\nstopping: finishing this step and saving a checkpoint (Ctrl-C again to abort)")

    def run(self) -> TrainResult:
        """Train to the configured length; Ctrl-C or SIGTERM saves a checkpoint and returns.

        With ``threads`` set, PyTorch's thread count (process-wide) is changed for the run and restored after.
        """
        with cpu_threads(self.requested.threads):
            return self._run()

    def _run(self) -> TrainResult:
        self._setup()
        cfg = self.config
        installed = []
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                installed.append((sig, signal.signal(sig, self._handle_signal)))
            except ValueError:  # not the main thread (e.g. a notebook worker): no signal handling
                pass
        n = torch.get_num_threads()
        where = f"cpu with {n} thread{'s' if n != 1 else ''}" if self.device.type == "cpu" else str(self.device)
        self.say(f"training {self.total} steps on {where} (batch {cfg.batch_size}, {cfg.model.image_size}px, "
                 f"{cfg.model.channels} channel(s), loss {cfg.loss}, amp {'bf16' if cfg.amp else 'off'}) "
                 f"-> {self.run_dir}")
        last_path: Path | None = None
        clean = False
        try:
            last_path = self._loop()
            clean = True
        finally:
            for sig, old in installed:
                signal.signal(sig, old)
            self.feed.close()
            if self.log is not None:
                self.log.close()
            if self.dist.enabled:
                # DDP's reducer keeps the process group alive: unwrap here, so that the group really ends in
                # shutdown() and not at interpreter exit, where gloo's threads can abort the process.
                s = self.state
                s.generator, s.discriminator = unwrap(s.generator), unwrap(s.discriminator)
            shutdown(self.dist, clean)
        interrupted = self._stop_signal is not None
        if not interrupted and self.dist.is_main:
            self.save_samples()
            plot_losses(self.run_dir / "metrics.csv", self.run_dir / "losses.png")
        return TrainResult(self.run_dir, self.step, last_path, interrupted, self.dist.is_main)

    def _loop(self) -> Path:
        from tqdm import tqdm

        cfg = self.config
        bar = tqdm(total=self.total, initial=self.step, disable=not (cfg.progress and self.dist.is_main), unit="step",
                   dynamic_ncols=True, file=sys.stderr)
        window = MetricWindow()
        last_path = ckpt.latest_checkpoint(self.run_dir / "checkpoints")
        epoch_seen, last_grid = self.sampler.epoch, self.step
        try:
            while self.step < self.total and self._stop_signal is None:
                metrics = self._one_step()
                check = torch.stack([metrics["d_loss"].float(), metrics["g_loss"].float(),
                                     torch.tensor(float(self._stop_signal is not None), device=self.device)])
                check = all_mean(self.dist, check)  # every rank takes the same decision
                if check[2].item() > 0 and self._stop_signal is None:
                    self._stop_signal = signal.SIGTERM
                if not all(math.isfinite(v) for v in check[:2].tolist()):
                    self._non_finite(metrics, last_path)
                    window.clear()
                    bar.n = self.step
                    bar.refresh()
                    continue
                self.step += 1
                window.add(metrics)
                bar.update()
                if self.step % cfg.log_every == 0 or self.step == self.total:
                    # d_updated (the share of D updates made) only means something under the tutorial's skip rule.
                    hidden = {"d_real_sign", "r1"} | (set() if cfg.d_skip_below is not None else {"d_updated"})
                    means = window.row(cfg.batch_size * (2 if cfg.alternate else 1),
                                       lambda v: all_mean(self.dist, v.to(self.device)).item(), hidden)
                    row = {"step": self.step, "epoch": self.sampler.epoch, **means}
                    if self.log is not None:
                        self.log.log(row)
                    bar.set_postfix(d=f"{row['d_loss']:.3f}", g=f"{row['g_loss']:.3f}",
                                    img_s=f"{row['images_per_sec']:.0f}")
                epoch_done = self.sampler.epoch != epoch_seen
                epoch_seen = self.sampler.epoch
                # By default a grid per epoch, but not more often than every MIN_GRID_STEPS: a folder of 100
                # images has an epoch every step.
                if (cfg.sample_every and self.step % cfg.sample_every == 0) or \
                        (not cfg.sample_every and epoch_done and self.step - last_grid >= MIN_GRID_STEPS):
                    self.save_samples()
                    last_grid = self.step
                if cfg.eval_every and (self.step % cfg.eval_every == 0 or self.step == self.total) \
                        and self.dist.is_main:
                    row = self.evaluate()
                    self.log.log({"step": self.step, "epoch": self.sampler.epoch, **row})
                if self.step % cfg.checkpoint_every == 0 and self.step < self.total:
                    last_path = self.save_checkpoint()
        finally:
            bar.close()
        # The end of the run, or a Ctrl-C between steps: the state is consistent, save it.
        last_path = self.save_checkpoint()
        if self._stop_signal is not None:
            self.say(f"saved {last_path} at step {self.step}; continue with --resume")
        return last_path


def train(data_dir: str | os.PathLike, run_dir: str | os.PathLike, config: TrainConfig, resume: bool = False,
          allow_data_change: bool = False, say: Callable[[str], None] | None = None) -> TrainResult:
    """Train a DCGAN on a folder of images; see ``Trainer``."""
    return Trainer(data_dir, run_dir, config, resume=resume, allow_data_change=allow_data_change, say=say).run()
