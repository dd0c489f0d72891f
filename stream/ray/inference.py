"""The inference side of a Ray run: the pool's actors and the cameras' handle on the pool.

An inference actor (:class:`InferenceWorker`) owns one engine (``make_engine``, loaded at the
first call, so a restarted actor reloads it by itself) and a :class:`Batcher` that runs the frames
its callers send at the same time as one forward: same input size, at most ``ray.max_batch``
frames.  The pool is ``ray.inference_actors`` of them (one per GPU, or N on CPU).

``plan_pool`` sizes the pool for the cluster's resources.  A camera reaches the pool through :class:`RemoteEngine`, an engine-shaped callable that the local
``InferenceStage`` uses unchanged: each call sends one frame to the next actor in turn and, when
that actor died, to another one (Ray restarts the dead one).

These are plain classes; ``stream.ray.runner`` makes actors of them with ``ray.remote``.  Only
``RemoteEngine.__call__`` imports ray, and it runs inside a camera actor.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import deque
from typing import Any, NamedTuple, Sequence

import numpy as np

from posestream_common.errors import ConfigError, StageError
from stream.config import Config
from stream.runtime import load_engine

log = logging.getLogger(__name__)

WAIT_SLICE_S = 0.25     # a remote call is waited for in slices, to notice a stop
DOWN_S = 1.0            # an inference actor that failed a call is avoided this long


# -- the pool -------------------------------------------------------------------------------


class PoolPlan(NamedTuple):
    """How many inference actors, and what each one reserves."""

    actors: int
    num_cpus: float
    num_gpus: float


def plan_pool(settings: Any, device: str, resources: dict[str, float], cameras: int) -> PoolPlan:
    """The inference pool for a cluster with ``resources`` (``ray.cluster_resources()``).

    With GPUs (and ``model.device`` not cpu): one actor per ``inference_gpus`` share of them.
    Otherwise CPU actors: ``inference_actors`` or as many as fit in the CPUs the cameras leave.
    """
    gpus = float(resources.get("GPU", 0.0))
    cpus = float(resources.get("CPU", 0.0))
    if device.startswith("cuda") and gpus <= 0:
        raise ConfigError(f"model.device {device!r}: the Ray cluster has no GPU")
    if gpus > 0 and device != "cpu":
        actors = settings.inference_actors or max(1, int(gpus / settings.inference_gpus + 1e-9))
        return PoolPlan(actors, min(settings.inference_cpus, 1.0), settings.inference_gpus)
    free_cpus = cpus - cameras * settings.camera_cpus
    actors = settings.inference_actors or max(1, int(free_cpus / settings.inference_cpus + 1e-9))
    return PoolPlan(actors, settings.inference_cpus, 0.0)


# -- batching -------------------------------------------------------------------------------


class _Request:
    def __init__(self, batch: np.ndarray):
        self.batch = batch
        self.done = threading.Event()
        self.result: tuple[np.ndarray, np.ndarray, float, int] | None = None
        self.error: BaseException | None = None


class Batcher:
    """Runs ``engine`` over batches gathered from concurrent callers.

    ``submit(batch [n,3,H,W])`` blocks until its frames have been through the engine and returns
    ``(heatmaps [n,...], pafs [n,...], forward_s, frames_in_forward)``.  Worker threads take the
    oldest waiting request plus any other waiting requests of the same input size, up to
    ``max_batch`` frames, and run them as one forward.  ``workers`` forwards may run at once.
    """

    def __init__(self, engine: Any, max_batch: int, workers: int = 1):
        if max_batch < 1 or workers < 1:
            raise ValueError(f"max_batch and workers must be >= 1, got {max_batch}, {workers}")
        self.engine = engine
        self.max_batch = max_batch
        self.batches = 0
        self.frames = 0
        self.forward_s = 0.0
        self._pending: deque[_Request] = deque()
        self._wake = threading.Condition()
        self._closed = False
        self._threads = [threading.Thread(target=self._work, name=f"batcher-{number}", daemon=True)
                         for number in range(workers)]
        for thread in self._threads:
            thread.start()

    def submit(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray, float, int]:
        batch = np.asarray(batch, dtype=np.float32)
        if not batch.flags.writeable:       # Ray hands arguments over read-only; torch wants to own them
            batch = batch.copy()
        request = _Request(batch)
        with self._wake:
            if self._closed:
                raise RuntimeError("the batcher is closed")
            self._pending.append(request)
            self._wake.notify()
        request.done.wait()
        if request.error is not None:
            raise request.error
        assert request.result is not None
        return request.result

    def close(self) -> None:
        """Finish the waiting requests, then stop the worker threads."""
        with self._wake:
            self._closed = True
            self._wake.notify_all()

    def _take(self) -> list[_Request] | None:
        """The next batch of requests (lock held); None once closed and drained."""
        while not self._pending:
            if self._closed:
                return None
            self._wake.wait()
        first = self._pending.popleft()
        taken, frames = [first], len(first.batch)
        for request in list(self._pending):
            if frames >= self.max_batch:
                break
            if request.batch.shape[1:] == first.batch.shape[1:] and frames + len(request.batch) <= self.max_batch:
                self._pending.remove(request)
                taken.append(request)
                frames += len(request.batch)
        return taken

    def _work(self) -> None:
        while True:
            with self._wake:
                taken = self._take()
            if taken is None:
                return
            self._run(taken)

    def _run(self, taken: list[_Request]) -> None:
        inputs = taken[0].batch if len(taken) == 1 else np.concatenate([r.batch for r in taken])
        started = time.perf_counter()
        try:
            heatmaps, pafs = self.engine(inputs)
        except Exception as error:  # noqa: BLE001 - every caller of the batch gets the error
            for request in taken:
                request.error = error
                request.done.set()
            return
        forward_s = time.perf_counter() - started
        with self._wake:
            self.batches += 1
            self.frames += len(inputs)
            self.forward_s += forward_s
        start = 0
        for request in taken:
            stop = start + len(request.batch)
            request.result = (heatmaps[start:stop], pafs[start:stop], forward_s, len(inputs))
            request.done.set()
            start = stop


class InferenceWorker:
    """One inference actor: an engine built from ``config`` behind a :class:`Batcher`.

    The engine is loaded at the first ``ready``/``infer`` call (so a restarted actor reloads it
    itself).  ``incarnation`` changes with every (re)start: the driver counts restarts by it.
    """

    def __init__(self, config_data: dict[str, Any]):
        self.config = Config.model_validate(config_data)
        configure_worker_logging(self.config.run.log_level)
        self.incarnation = uuid.uuid4().hex
        self._lock = threading.Lock()
        self._engine: Any = None
        self._batcher: Batcher | None = None

    def _load(self) -> Batcher:
        with self._lock:
            if self._batcher is None:
                self._engine = load_engine(self.config)
                self._batcher = Batcher(self._engine, self.config.ray.max_batch,
                                        workers=int(getattr(self._engine, "workers", 1) or 1))
            return self._batcher

    def ready(self) -> dict[str, Any]:
        """Load the engine; what cameras need from it (preprocess spec, stride)."""
        self._load()
        return {"preprocess": self._engine.preprocess, "stride": int(self._engine.stride),
                "engine": getattr(self._engine, "name", type(self._engine).__name__),
                **self.describe()}

    def infer(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray, float, int]:
        return self._load().submit(batch)

    def describe(self) -> dict[str, Any]:
        batcher = self._batcher
        return {"incarnation": self.incarnation,
                "batches": batcher.batches if batcher else 0,
                "frames": batcher.frames if batcher else 0,
                "forward_s": batcher.forward_s if batcher else 0.0}


class CameraStopped(Exception):
    """A remote inference call was abandoned because the camera is stopping."""


class RemoteEngine:
    """Engine-shaped proxy for the camera's ``InferenceStage``: each call goes to the pool.

    ``workers`` is the camera's in-flight bound (the pipeline runs that many inference threads).
    Actors are taken in turn from ``offset``; a call that fails because its actor died goes to
    the next one (the frame is not lost), and that actor is avoided for ``DOWN_S``.  When no
    actor has answered for ``give_up_s`` the call raises ``StageError``.
    """

    name = "ray-pool"

    def __init__(self, pool: Sequence[Any], preprocess: Any, stride: int, workers: int,
                 stop_event: threading.Event, offset: int = 0, give_up_s: float = 60.0):
        if not pool:
            raise ValueError("the inference pool is empty")
        self.pool = list(pool)
        self.preprocess = preprocess
        self.stride = stride
        self.workers = workers
        self.retries = 0
        self._stop = stop_event
        self._give_up_s = give_up_s
        self._turn = offset % len(self.pool)
        self._down_until = [0.0] * len(self.pool)
        self._lock = threading.Lock()

    def __call__(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        import ray

        failing_since = None
        while True:
            actor = self._choose()
            ref = self.pool[actor].infer.remote(batch)
            try:
                heatmaps, pafs, _forward_s, _frames = self._wait(ray, ref)
                return heatmaps, pafs
            except ray.exceptions.RayActorError as error:
                now = time.monotonic()
                failing_since = failing_since or now
                with self._lock:
                    self.retries += 1
                    self._down_until[actor] = now + DOWN_S
                log.debug("inference actor %d failed a call (%s); trying another", actor, type(error).__name__)
                if now - failing_since > self._give_up_s:
                    raise StageError(f"no inference actor answered for {self._give_up_s:g} s "
                                     f"(ray.restart_timeout_s)") from None
                if self._stop.wait(0.05 if len(self.pool) > 1 else 0.2):
                    raise CameraStopped() from None

    def _choose(self) -> int:
        with self._lock:
            now = time.monotonic()
            for step in range(len(self.pool)):
                actor = (self._turn + step) % len(self.pool)
                if self._down_until[actor] <= now:
                    self._turn = actor + 1
                    return actor
            actor = min(range(len(self.pool)), key=self._down_until.__getitem__)
            self._turn = actor + 1
            return actor

    def _wait(self, ray: Any, ref: Any) -> Any:
        while True:
            ready, _ = ray.wait([ref], timeout=WAIT_SLICE_S)
            if ready:
                return ray.get(ref)
            if self._stop.is_set():
                raise CameraStopped()


def configure_worker_logging(level: str) -> None:
    """Actor processes log like the CLI (Ray forwards their stderr to the driver)."""
    root = logging.getLogger()
    if not root.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s.%(msecs)03d %(levelname)s %(name)s: %(message)s",
                                               datefmt="%H:%M:%S"))
        root.addHandler(handler)
    root.setLevel(getattr(logging, level, logging.INFO))
