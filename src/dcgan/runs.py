"""Run folders: the layout of what a run writes, the lock a live run holds, which checkpoint a command uses,
and loading a trained generator.

    RUN_DIR/config.json          the run's plan: every setting resolved, and what was asked
    RUN_DIR/data_report.json     what was done with every file of the data folder
    RUN_DIR/checkpoints/         step-XXXXXXXX.safetensors (whole state; the newest --keep), best.safetensors
    RUN_DIR/samples/             step-XXXXXXXX.png grids, always from the same fixed z
    RUN_DIR/metrics.csv          step, epoch, losses, D outputs, images/second, (FID, KID, ...)
    RUN_DIR/tensorboard/         event files (when tensorboard is installed)
    RUN_DIR/losses.png           the losses against the step, drawn at the end
    RUN_DIR/.dcgan-lock          held by the process training into the folder

torch is imported only to load a generator.
"""

from __future__ import annotations

import errno
import fcntl
import os
import re
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import CheckpointError, UserError
from .files import read_json, read_json_or_none, write_json

if TYPE_CHECKING:
    import torch

    from .config import DataConfig, ModelSpec
    from .models import Generator
    from .plan import RunPlan


class RunFolderError(UserError):
    """A run folder is in use, missing or damaged; the message says which and what to do."""


LOCK_NAME = ".dcgan-lock"
BEST_NAME = "best.safetensors"
_STEP_NAME = re.compile(r"^step-(\d+)\.safetensors$")


def checkpoint_name(step: int) -> str:
    return f"step-{step:08d}.safetensors"


def list_checkpoints(folder: str | os.PathLike) -> list[Path]:
    """Step checkpoints in a run's checkpoint folder, oldest first."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _STEP_NAME.match(p.name))]
    return [p for _, p in sorted(found)]


def latest_checkpoint(folder: str | os.PathLike) -> Path | None:
    """The newest step checkpoint in a folder, or None."""
    found = list_checkpoints(folder)
    return found[-1] if found else None


def prune(folder: str | os.PathLike, keep: int) -> None:
    """Delete all but the newest ``keep`` step checkpoints (best.safetensors is never touched)."""
    for old in list_checkpoints(folder)[:-keep]:
        old.unlink(missing_ok=True)


@dataclass(frozen=True)
class RunFolder:
    """Where each file of a run lives. The only place that knows the layout."""

    path: Path

    @property
    def config(self) -> Path:
        return self.path / "config.json"

    @property
    def report(self) -> Path:
        return self.path / "data_report.json"

    def data_report(self) -> dict | None:
        """data_report.json, or None; a report written before rectangles (one ``image_size``) gets its
        ``width`` and ``height``."""
        report = read_json_or_none(self.report)
        if not isinstance(report, dict):
            return None
        if "width" not in report and "image_size" in report:
            report["width"] = report["height"] = report["image_size"]
        return report

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    @property
    def samples(self) -> Path:
        return self.path / "samples"

    @property
    def metrics(self) -> Path:
        return self.path / "metrics.csv"

    @property
    def tensorboard(self) -> Path:
        return self.path / "tensorboard"

    @property
    def losses(self) -> Path:
        return self.path / "losses.png"

    @property
    def lock(self) -> Path:
        return self.path / LOCK_NAME

    @property
    def best(self) -> Path:
        return self.checkpoints / BEST_NAME

    def checkpoint(self, step: int) -> Path:
        return self.checkpoints / checkpoint_name(step)

    def sample(self, step: int) -> Path:
        return self.samples / f"step-{step:08d}.png"

    def latest_checkpoint(self) -> Path | None:
        return latest_checkpoint(self.checkpoints)

    def saved_plan(self) -> RunPlan:
        """The plan in config.json; RunFolderError when it is missing, truncated or not a plan."""
        from .plan import RunPlan
        from .schema import ConfigError

        try:
            values = read_json(self.config)
        except FileNotFoundError:
            raise RunFolderError(f"{str(self.config)!r} is missing: cannot tell how this run was set up") from None
        except (OSError, ValueError) as e:
            raise RunFolderError(
                f"{str(self.config)!r} cannot be read ({e}); it is damaged: fix or delete it "
                "(the checkpoints are untouched)"
            ) from None
        try:
            return RunPlan.from_dict(values, where=str(self.config))
        except ConfigError as e:
            raise RunFolderError(f"{e} (was it written by an older version of dcgan, or edited?)") from None

    def save_plan(self, plan: RunPlan) -> None:
        write_json(self.config, plan.to_dict())


def looks_like_run(folder: str | os.PathLike) -> bool:
    """True for a folder dcgan has trained into (a lock file, or config.json beside checkpoints/ or samples/)."""
    folder = Path(folder)
    try:
        return (folder / LOCK_NAME).exists() or (
            (folder / "config.json").is_file() and ((folder / "checkpoints").is_dir() or (folder / "samples").is_dir())
        )
    except OSError:
        return False


def is_run(path: str | os.PathLike) -> bool:
    """True for a checkpoint file or a run folder."""
    p = Path(path)
    return (p.is_file() and p.suffix == ".safetensors") or (p.is_dir() and looks_like_run(p))


class RunLock:
    """An exclusive lock on a run folder, held while one process trains into it.

    flock on RUN_DIR/.dcgan-lock: the kernel releases it when the process ends in any way (kill -9 included),
    so a lock is never stale in effect. The file records who holds it; a file that still names a process
    but is not locked was left by a run that died, and is taken over with a message.
    """

    def __init__(self, folder: RunFolder) -> None:
        self.folder = folder
        self.fd: int | None = None
        self.took_over: str | None = None  # who held it before, when that process died holding it

    def acquire(self) -> RunLock:
        path = self.folder.lock
        try:
            self.folder.path.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise RunFolderError(
                f"cannot write to the output folder {str(self.folder.path)!r}: {e.strerror or e}"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            holder = _read_holder(fd)
            os.close(fd)
            if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise RunFolderError(
                    f"{str(self.folder.path)!r} is in use by another training process "
                    f"({holder or 'unknown'}); wait for it to finish, stop it, or choose another "
                    "--out"
                ) from None
            raise RunFolderError(f"cannot lock {str(path)!r}: {e.strerror or e}") from None
        previous = _read_holder(fd)
        if previous:
            self.took_over = previous
        try:
            os.ftruncate(fd, 0)
            os.pwrite(
                fd,
                f"pid {os.getpid()} on {socket.gethostname()} since {time.strftime('%Y-%m-%d %H:%M:%S')}\n".encode(),
                0,
            )
            os.fsync(fd)
        except OSError as e:
            os.close(fd)
            raise RunFolderError(
                f"cannot write to the output folder {str(self.folder.path)!r}: {e.strerror or e}"
            ) from None
        self.fd = fd
        return self

    def release(self) -> None:
        """Empty the file (a clean release leaves no holder behind) and unlock."""
        if self.fd is None:
            return
        try:
            os.ftruncate(self.fd, 0)
        except OSError:
            pass
        finally:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None


def _read_holder(fd: int) -> str:
    try:
        return os.pread(fd, 256, 0).decode("utf-8", "replace").strip()
    except OSError:
        return ""


# --- which checkpoint, and the generator in it ------------------------------------------------------------


def resolve_checkpoint(path: str | os.PathLike, which: str = "auto") -> Path:
    """A run folder's checkpoint (``auto``: best.safetensors when --eval-every kept one, else the newest;
    ``best``; ``latest``) or a checkpoint file itself."""
    path = Path(path)
    if path.is_file():
        return path
    if not path.is_dir():
        raise CheckpointError(f"{str(path)!r} is neither a run folder nor a checkpoint file")
    folder = RunFolder(path)
    if which in ("auto", "best") and folder.best.is_file():
        return folder.best
    if which == "best":
        raise CheckpointError(
            f"no {BEST_NAME} in {str(folder.checkpoints)!r}: it is kept by training with --eval-every"
        )
    latest = folder.latest_checkpoint()
    if latest is None:
        raise CheckpointError(f"no checkpoint in {str(folder.checkpoints)!r}: has this run trained yet?")
    return latest


@dataclass(frozen=True)
class LoadedGenerator:
    """A trained generator in eval mode, what it is, and where it came from."""

    net: Generator
    model: ModelSpec
    path: Path  # the checkpoint file
    step: int
    used_ema: bool
    best_fid: float
    data: DataConfig  # how the run decoded its images: real images for metrics are decoded the same way
    discriminator: torch.nn.Module | None = None  # with load_generator(..., discriminator=True), in eval mode
    class_names: tuple[str, ...] = ()  # a class-conditional run's classes, in index order
    class_draw: tuple[float, ...] = ()  # clusters: how a sample without a class draws one (plan.RunPlan)
    precise_bn: bool = False  # its batch-norm statistics re-estimated on loading (load_generator)

    def describe(self) -> str:
        """'best.safetensors (step 4000, FID 31.2, EMA)' for the message of each command."""
        fid = f", FID {self.best_fid:.2f}" if self.path.name == BEST_NAME and self.best_fid < float("inf") else ""
        precise = ", norms re-estimated" if self.precise_bn else ""
        return f"{self.path.name} (step {self.step}{fid}, {'EMA' if self.used_ema else 'raw G'}{precise})"


def load_generator(
    path: str | os.PathLike,
    device: str | torch.device = "cpu",
    ema: bool = True,
    which: str = "auto",
    discriminator: bool = False,
    precise_bn: bool = False,
) -> LoadedGenerator:
    """Load a trained generator (the EMA copy when there is one) from a run folder or checkpoint file; with
    ``discriminator``, its trained D too (projection measures pictures with D's features); with ``precise_bn``,
    G's batch-norm statistics re-estimated for its own weights (``sampling.precise_bn``, drawing classes as
    samples do), as a run trained with --precise-bn saves them."""
    from . import checkpoint as ckpt
    from .config import DataConfig, from_dict
    from .models import Discriminator, Generator
    from .sampling import precise_bn as reestimate
    from .schema import ConfigError

    file = resolve_checkpoint(path, which)
    record = ckpt.load(file)
    weights, used_ema = record.generator_weights(ema)

    def built(net: torch.nn.Module, state: dict) -> torch.nn.Module:
        try:
            net.load_state_dict(state)
        except (RuntimeError, KeyError, TypeError) as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise CheckpointError(f"{str(file)!r}: the weights do not fit its model ({first})") from None
        return net.to(device).eval()

    net = built(Generator(record.model), weights)
    class_draw = tuple(float(p) for p in record.plan.get("class_draw", ()))
    if precise_bn:
        reestimate(net, record.model.latent_dim, record.model.num_classes, class_draw)
    critic = built(Discriminator(record.model), record.networks["discriminator"]) if discriminator else None
    try:
        data = from_dict(DataConfig, record.plan.get("data", {}), where=f"{str(file)!r} (data)")
    except ConfigError as e:
        raise CheckpointError(str(e)) from None
    return LoadedGenerator(
        net=net,  # type: ignore[arg-type]
        model=record.model,
        path=file,
        step=record.step,
        used_ema=used_ema,
        best_fid=record.best_fid,
        data=data,
        discriminator=critic,
        class_names=tuple(str(c) for c in record.plan.get("class_names", ())),
        class_draw=class_draw,
        precise_bn=precise_bn,
    )
