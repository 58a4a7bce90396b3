"""``dcgan serve``: a local page to watch a run train and to explore its generator.

A Starlette app over one run folder. The training view reads what the trainer writes (config.json,
data_report.json, metrics.csv, samples/), so it works while `dcgan train` runs in another process and
before any checkpoint exists. The explore view draws images on the server from the run's checkpoint (the
best one when --eval-every kept it, else the newest, its norms re-estimated with --precise-bn); when training
writes a newer one, it loads in the background while the loaded one keeps answering. Drawing runs off the
event loop, so one slow request holds no other.

Every request is checked by the same settings classes and parsers the CLI uses; a bad one gets a 4xx with a
JSON message. Files are served only from inside the run folder, by names the server itself lists.
"""

from __future__ import annotations

import io
import math
import os
import re
import threading
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from .errors import UserError
from .files import read_json_or_none
from .runs import RunFolder, resolve_checkpoint

MAX_TILES = 64  # seeds one explore page shows
MAX_WALK_STOPS = 16
MAX_WALK_FRAMES = 48
_SAMPLE = re.compile(r"^step-(\d{8})\.png$")
WEB = Path(__file__).with_name("web")
_Version = tuple[Path, float]  # a checkpoint file and its modification time


class BadRequest(UserError):
    """A request the server cannot answer as asked (400 with the message)."""


def _number(value: str | None, name: str, default: float, low: float, high: float) -> float:
    if value is None or value == "":
        return default
    try:
        x = float(value)
    except ValueError:
        raise BadRequest(f"{name}: expected a number, got {value!r}") from None
    if not math.isfinite(x) or not low <= x <= high:
        raise BadRequest(f"{name} must be between {low:g} and {high:g}, got {value!r}")
    return x


class Explorer:
    """The run's generator: loaded on first use; when training writes a newer checkpoint, that one loads in the
    background (with --precise-bn its norms are re-estimated, seconds to minutes) while the loaded one answers."""

    def __init__(self, folder: RunFolder, which: str = "auto", precise_bn: bool = False) -> None:
        self.folder, self.which, self.precise_bn = folder, which, precise_bn
        self._lock = threading.Lock()  # guards the fields below
        self._first = threading.Lock()  # one first load at a time; the requests beside it wait for it
        self._loaded: tuple[_Version, Any] | None = None
        self._loading: _Version | None = None
        self._failed: tuple[_Version, str] | None = None  # a newer checkpoint that would not load, and why

    def current(self) -> _Version | None:
        """The checkpoint the view would draw from and its modification time; None before training writes one.
        Pruning (``--keep``) can remove the file between finding it and reading its time: then it looks again."""
        for _ in range(3):
            try:
                path = resolve_checkpoint(self.folder.path, self.which)
            except UserError:
                return None
            try:
                return path, path.stat().st_mtime
            except FileNotFoundError:
                continue
        return None

    def generator(self) -> Any:
        version = self.current()
        if version is None:
            raise HTTPException(409, "this run has no checkpoint yet: the explore view opens once training writes one")
        loaded = self._follow(version)
        if loaded is not None:
            return loaded
        with self._first:
            with self._lock:
                if self._loaded is not None:
                    return self._loaded[1]
            gen = self._load(version)
            with self._lock:
                self._loaded = (version, gen)
            return gen

    def _follow(self, version: _Version) -> Any:
        """The loaded generator (None before the first load); a newer ``version`` starts loading beside it."""
        with self._lock:
            if self._loaded is None:
                return None
            newer = version != self._loaded[0] and self._loading is None
            if newer and (self._failed is None or self._failed[0] != version):
                self._loading = version
                threading.Thread(target=self._load_newer, args=(version,), daemon=True).start()
            return self._loaded[1]

    def _load(self, version: _Version) -> Any:
        from .api import TrainedGenerator

        return TrainedGenerator(version[0], precise_bn=self.precise_bn)

    def _load_newer(self, version: _Version) -> None:
        try:
            gen = self._load(version)
        except Exception as e:  # the loaded generator keeps answering; /api/run says why
            with self._lock:
                self._failed, self._loading = (version, f"{version[0].name} did not load: {e}"), None
            return
        with self._lock:
            self._loaded, self._loading, self._failed = (version, gen), None, None

    def state(self) -> dict[str, Any] | None:
        """What /api/run says of the explore view (None before a checkpoint exists): the run's checkpoint it would
        draw from, how it loads them, the one it draws from, one loading, one that failed. Once the view has drawn,
        a newer checkpoint starts loading here too, so the page follows training."""
        version = self.current()
        if version is None:
            return None
        self._follow(version)
        with self._lock:
            return {
                "file": version[0].name,
                "which": self.which,
                "precise_bn": self.precise_bn,
                "drawing": None if self._loaded is None else self._loaded[0][0].name,
                "loading": None if self._loading is None else self._loading[0].name,
                "error": None if self._failed is None else self._failed[1],
            }


def _png(image: Any) -> Response:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return Response(buffer.getvalue(), media_type="image/png", headers={"Cache-Control": "no-store"})


def _class(request: Request, gen: Any) -> str | None:
    """The class asked for (a conditional model needs one: the first by default; one trained on clusters draws
    each seed's own when none is asked for)."""
    asked = request.query_params.get("class") or None
    if gen.class_names and asked is None and not gen.class_draw:
        return gen.class_names[0]
    if asked is not None:
        gen.class_index(asked)  # refuses unknown names and classes for an unconditional model
    return asked


def create_app(run_dir: str | os.PathLike, checkpoint: str = "auto", precise_bn: bool = False) -> Starlette:
    """The app for one run folder; ``precise_bn`` re-estimates G's norms each time a checkpoint is loaded."""
    folder = RunFolder(Path(run_dir))
    explorer = Explorer(folder, checkpoint, precise_bn)
    # The handlers that draw or read the run are plain functions, which Starlette runs in its thread pool: a slow
    # walk, or a first load re-estimating norms, holds neither /api/run nor the other tiles.

    async def index(request: Request) -> Response:
        return HTMLResponse((WEB / "index.html").read_text(encoding="utf-8"))

    def run_state(request: Request) -> Response:
        return JSONResponse(run_summary(folder, explorer))

    async def sample(request: Request) -> Response:
        name = request.path_params["name"]
        path = folder.samples / name
        if not _SAMPLE.match(name) or not path.is_file() or path.resolve().parent != folder.samples.resolve():
            raise HTTPException(404, f"no progress grid {name!r} in this run")
        return FileResponse(path, media_type="image/png")

    def image(request: Request) -> Response:
        from .images import make_grid
        from .seeds import parse_seeds

        gen = explorer.generator()
        try:
            (seed,) = parse_seeds(request.path_params["seed"], limit=1)
        except ValueError as e:
            raise BadRequest(str(e)) from None
        truncation = _number(request.query_params.get("truncation"), "truncation", 1.0, 0.0, 2.0)
        scale = int(_number(request.query_params.get("scale"), "scale", 1, 1, 8))
        pixels = gen.images(seeds=[seed], truncation=truncation, classes=_class(request, gen))
        return _png(make_grid(pixels, 1, padding=0, scale=scale))

    def grid(request: Request) -> Response:
        from .seeds import parse_seeds

        gen = explorer.generator()
        try:
            seeds = parse_seeds(request.query_params.get("seeds", "0-31"), limit=MAX_TILES)
        except ValueError as e:
            raise BadRequest(str(e)) from None
        truncation = _number(request.query_params.get("truncation"), "truncation", 1.0, 0.0, 2.0)
        return _png(gen.grid(seeds=seeds, labels=True, truncation=truncation, classes=_class(request, gen)))

    def walk(request: Request) -> Response:
        from .figures import gif_bytes
        from .images import default_scale, enlarge
        from .options import WalkSpec

        gen = explorer.generator()
        seeds = request.query_params.get("seeds", "")
        if len(seeds.split(",")) > MAX_WALK_STOPS:
            raise BadRequest(f"seeds: at most {MAX_WALK_STOPS} stops")
        frames = int(_number(request.query_params.get("frames"), "frames", 12, 1, MAX_WALK_FRAMES))
        truncation = _number(request.query_params.get("truncation"), "truncation", 1.0, 0.0, 2.0)
        spec = WalkSpec(seeds=seeds, frames=frames, truncation=truncation, label=_class(request, gen))
        if any(isinstance(stop, str) for stop in spec.seed_list()):
            raise BadRequest("seeds: the page walks between seeds only")
        pixels = gen.walk(spec)
        gif = gif_bytes(enlarge(pixels, default_scale(pixels.shape[1], 128)), fps=12)
        return Response(gif, media_type="image/gif", headers={"Cache-Control": "no-store"})

    def arithmetic(request: Request) -> Response:
        from .options import ArithmeticSpec

        gen = explorer.generator()
        label = _class(request, gen)
        parts = []
        for key, sign in (("a", "+"), ("b", "-"), ("c", "+")):
            seeds = request.query_params.get(key, "")
            if seeds:
                parts.append(f"{sign} {label + ':' if label else ''}[{seeds}]")
        if not parts:
            raise BadRequest("pick seeds for A, B or C")
        expression = " ".join(parts).removeprefix("+ ")
        spec = ArithmeticSpec(expression=expression, samples=4)
        _, figure = gen.evaluate(spec)
        return _png(figure)

    async def not_found(request: Request, exc: Exception) -> Response:
        detail = exc.detail if isinstance(exc, HTTPException) and exc.detail != "Not Found" else None
        return JSONResponse({"error": detail or f"no such page: {request.url.path}"}, status_code=404)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return JSONResponse({"error": exc.detail}, status_code=exc.status_code)

    async def user_error(request: Request, exc: Exception) -> Response:
        return JSONResponse({"error": str(exc)}, status_code=400)

    routes = [
        Route("/", index),
        Route("/api/run", run_state),
        Route("/samples/{name}", sample),
        Route("/api/image/{seed}.png", image),
        Route("/api/grid.png", grid),
        Route("/api/walk.gif", walk),
        Route("/api/arithmetic.png", arithmetic),
    ]
    handlers: dict[Any, Any] = {404: not_found, HTTPException: http_error, UserError: user_error}
    return Starlette(routes=routes, exception_handlers=handlers)


def run_summary(folder: RunFolder, explorer: Explorer) -> dict[str, Any]:
    """What the training view shows: the plan, the data report, the metrics so far, the grids, the status."""
    from .runlog import read_metrics

    plan = read_json_or_none(folder.config)
    rows = []
    if folder.metrics.is_file():
        for row in read_metrics(folder.metrics):
            rows.append({k: float(v) for k, v in row.items() if v not in ("", None) and _is_number(v)})
    samples = sorted(int(m.group(1)) for p in folder.samples.glob("step-*.png") if (m := _SAMPLE.match(p.name)))
    step = int(max((r.get("step", 0) for r in rows), default=0))
    total = int(plan["steps"]) if plan and plan.get("steps", 0) < 10**9 else None
    speed = next((r["images_per_sec"] for r in reversed(rows) if "images_per_sec" in r), None)
    eta = None
    if total and speed and plan:
        eta = max(0.0, (total - step) * plan["batch_size"] / speed)
    summary = read_json_or_none(folder.path / "summary.json")
    return {
        "run": folder.path.name,
        "path": str(folder.path),
        "plan": plan,
        "report": folder.data_report(),
        "metrics": rows,
        "samples": samples,
        "checkpoint": explorer.state(),
        "classes": (plan or {}).get("class_names", []),
        "classes_drawn": bool((plan or {}).get("class_draw")),  # clusters: no class asked = each seed's own
        "status": {
            "step": step,
            "total": total,
            "images_per_sec": speed,
            "eta_seconds": eta,
            "done": summary is not None and summary.get("step") == step,
            "summary": summary,
        },
    }


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def serve(
    run_dir: str | os.PathLike,
    host: str = "127.0.0.1",
    port: int = 8000,
    checkpoint: str = "auto",
    precise_bn: bool = False,
) -> None:
    """Serve the page until interrupted."""
    import uvicorn

    uvicorn.run(create_app(run_dir, checkpoint, precise_bn), host=host, port=port, log_level="warning")
