"""The two worker threads of the streaming loop: capture + preprocess, and inference.

::

    [capture thread]  source.read() -> model input  --ready (1)-->
    [inference thread]                backend.infer --done (1)-->  [caller: argmax, overlay, sinks]

Consecutive frames overlap: while frame n is inferred, frame n+1 is decoded and preprocessed
and frame n-1 is drawn and written. The queues hold one item each, so at most five frames are
in flight and a file source is read no faster than the slowest stage (nothing is dropped).
OpenCV, onnxruntime and TensorRT release the GIL, so the threads run in parallel.

With ``workers`` > 1 (a backend whose ``infer`` may be called from several threads at once:
onnxruntime), that many inference threads run consecutive frames concurrently (on a CPU, e.g. two
1-thread runs instead of one 2-thread run, whose threads wait for each other at every layer);
outputs still leave in frame order.

Live sources keep their newest-frame semantics: the capture thread reads a frame only when an
inference thread has taken the previous one, and then waits until about one preprocessing time
before an inference thread will be free (running estimates), so a live frame does not sit in a
queue while the model is busy (latency stays capture -> shown, as in the sequential loop).

Every item carries its own stage times; the stream ends with an :class:`End` item that names the
reason (end of source, limit, error). ``close()`` stops every thread from any state.
"""

from __future__ import annotations

import contextlib
import functools
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from edgeseg.runtime.sources import Frame, ReadStatus, Source

from edgeseg.errors import EdgesegError

now = time.perf_counter
POLL_S = 0.05  # how often a blocked thread looks at the stop flag
AWAIT_S = 0.0005  # while a run is on the device: how often to look for its end or the next input


@dataclass
class Item:
    """One frame on its way: the model input, then the model output, and the stage seconds
    (capture_wait, preprocess, then inference); ``seq`` its place in the stream (0, 1, ...)."""

    frame: Frame
    x: np.ndarray | None
    seconds: list[float] = field(default_factory=list)
    out: np.ndarray | None = None
    seq: int = 0


@dataclass(frozen=True)
class End:
    """The stream is over: ``reason`` for the report; ``error`` an unexpected exception to re-raise."""

    reason: str
    error: BaseException | None = None


@dataclass(frozen=True)
class Limits:
    """Stop reading after ``max_frames`` frames or at ``deadline`` (perf_counter seconds)."""

    max_frames: int | None = None
    deadline: float | None = None
    duration_s: float | None = None

    def reason(self, frames: int, stopping: bool) -> str | None:
        """Why to read no more ('' when told to stop), or None to go on."""
        if stopping:
            return ""
        if self.max_frames is not None and frames >= self.max_frames:
            return f"--max-frames {self.max_frames} reached"
        if self.deadline is not None and now() >= self.deadline:
            return f"--duration {self.duration_s:g} s reached"
        return None


class Pipeline:
    """Runs the worker threads; the caller takes finished items with :meth:`get`. ``workers``:
    inference threads (> 1 only for a synchronous backend that allows concurrent ``infer``)."""

    def __init__(self, source: Source, to_input: Callable[[np.ndarray], np.ndarray], backend: Any,
                 limits: Limits, workers: int = 1) -> None:
        self._source, self._to_input, self._backend, self._limits = source, to_input, backend, limits
        self._overlapped = all(hasattr(backend, m) for m in ("submit", "collect", "done"))
        if workers < 1 or (workers > 1 and self._overlapped):
            raise ValueError(f"workers={workers}: an overlapped (submit/collect) backend takes 1 worker")
        self._workers = workers
        self._ready: queue.Queue[Item | End] = queue.Queue(maxsize=1)
        self._done: queue.Queue[Item | End] = queue.Queue(maxsize=1)
        self._stop = threading.Event()  # everything stops now
        self._finish = threading.Event()  # read no more frames; the ones in flight are completed
        self._taken = threading.Event()  # an inference thread took an input (live pacing)
        self._ended = threading.Event()  # an inference thread took the End: the others stop
        self._turn = threading.Condition()  # workers > 1: outputs leave in frame order
        self._next = 0  # seq of the next item to pass on
        self._sent = 0  # items the capture thread has put (the End comes after seq _sent - 1)
        self._busy: dict[int, float] = {}  # inference thread -> start of its current run
        self._ema = {"read": 0.0, "pre": 0.0, "infer": 0.0}
        self._last_done = 0.0
        self.timeouts = 0
        self.taken = 0  # inputs the inference threads have taken
        run = self._inference_overlapped if self._overlapped else self._inference
        self._threads = [threading.Thread(target=self._guard, args=(self._capture, self._ready),
                                          name="edgeseg-capture", daemon=True)]
        self._threads += [threading.Thread(target=self._guard, args=(functools.partial(run, w), self._done),
                                           name=f"edgeseg-infer-{w}", daemon=True) for w in range(workers)]

    def start(self) -> Pipeline:
        for t in self._threads:
            t.start()
        return self

    def get(self, timeout_s: float = POLL_S) -> Item | End | None:
        """The next finished item, End when over, None if nothing came within ``timeout_s``."""
        try:
            return self._done.get(timeout=timeout_s)
        except queue.Empty:
            return None

    def finish(self) -> None:
        """Read no more frames; the frames already read still come out, then an End."""
        self._finish.set()

    def close(self, join_s: float = 5.0) -> None:
        """Stop every thread now (items in flight are discarded) and wait for them."""
        self._stop.set()
        for q in (self._ready, self._done):  # unblock a thread waiting to put
            with contextlib.suppress(queue.Empty):
                while True:
                    q.get_nowait()
        for t in self._threads:
            t.join(timeout=join_s)

    # -- threads ---------------------------------------------------------------------------------
    def _put(self, q: queue.Queue[Item | End], item: Item | End) -> bool:
        while not self._stop.is_set():
            try:
                q.put(item, timeout=POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def _take(self, q: queue.Queue[Item | End]) -> Item | End | None:
        while not self._stop.is_set():
            try:
                return q.get(timeout=POLL_S)
            except queue.Empty:
                continue
        return None

    def _guard(self, body: Callable[[], End | None], out: queue.Queue[Item | End]) -> None:
        """Run a thread body; whatever ends it (End, a user error, a bug) goes downstream as End
        (None: another inference thread passes the End on)."""
        try:
            end = body()
        except EdgesegError as e:
            end = End(f"error: {e}")
        except BaseException as e:  # a bug: the caller re-raises it after closing everything
            end = End(f"error: {type(e).__name__}: {e}", e)
        if end is not None:
            self._put(out, end)

    def _limit(self, frames: int) -> str | None:
        return self._limits.reason(frames, self._finish.is_set() or self._stop.is_set())

    def _capture(self) -> End:
        frames, live = 0, bool(getattr(self._source, "live", False))
        while (reason := self._limit(frames)) is None:
            if live and frames and not self._pace():
                continue
            t0 = now()
            got = self._source.read()
            t1 = now()
            if got.status is ReadStatus.TIMEOUT:
                self.timeouts += 1
                continue
            if got.status is not ReadStatus.OK or got.frame is None:
                return End(f"{got.status.value}: {got.message}")
            x = self._to_input(got.frame.image_bgr)
            t2 = now()
            self._ema["read"] = _ema(self._ema["read"], t1 - t0)
            self._ema["pre"] = _ema(self._ema["pre"], t2 - t1)
            self._taken.clear()
            if not self._put(self._ready, Item(got.frame, x, [t1 - t0, t2 - t1], seq=frames)):
                return End("")
            frames += 1
            self._sent = frames
        return End(reason)

    def _pace(self) -> bool:
        """Live sources: wait until the previous frame entered inference, then until inference is
        about to be free (minus the time preprocessing takes). False = re-check the limits."""
        if not self._taken.wait(POLL_S):
            return False
        busy = list(self._busy.values())
        free_at = min(busy) + self._ema["infer"] if len(busy) >= self._workers else 0.0
        lead = free_at - self._ema["pre"] - now()
        if lead > 0:
            self._stop.wait(min(lead, POLL_S))
        return lead <= POLL_S

    def _inference(self, worker: int) -> End | None:
        """One inference thread of a synchronous backend: run the model on the inputs it takes and
        pass the outputs on in frame order (with several threads, a faster one waits its turn)."""
        while not self._stop.is_set():
            try:
                item = self._ready.get(timeout=POLL_S)
            except queue.Empty:
                if self._ended.is_set():
                    return None
                continue
            if isinstance(item, End):
                self._ended.set()
                return item if self._await_turn(self._sent) else None
            started = now()
            self._busy[worker] = started
            with self._turn:
                self.taken += 1
            self._taken.set()
            try:
                out, item.x = self._backend.infer(item.x), None  # the input is not needed downstream
            except BaseException:
                self._await_turn(item.seq)  # the frames before this one still come out first
                raise
            item.out, done = out, now()
            del self._busy[worker]
            item.seconds.append(done - started)
            self._ema["infer"] = _ema(self._ema["infer"], done - started)
            if not self._await_turn(item.seq) or not self._put(self._done, item):
                return None
            with self._turn:
                self._next += 1
                self._turn.notify_all()
        return None

    def _await_turn(self, seq: int) -> bool:
        """Wait until every item before ``seq`` has been passed on; False when told to stop."""
        with self._turn:
            while self._next != seq:
                if self._stop.is_set():
                    return False
                self._turn.wait(POLL_S)
        return True

    def _inference_overlapped(self, worker: int) -> End:
        """Run the model on each input in order with a backend that has ``submit``/``collect``/
        ``done`` (TensorRT): the next input is queued as soon as it arrives while the previous run
        is still on the device; the previous output is collected once its run is done."""
        b = self._backend
        pending: tuple[Item, Any, float] | None = None
        while not self._stop.is_set():
            if pending is not None and b.done(pending[1]):
                if not self._deliver(pending, b.collect):
                    break
                pending = None
                continue
            try:  # with a run in flight: look for the next input often, without holding the output back
                item = self._ready.get(timeout=POLL_S if pending is None else AWAIT_S)
            except queue.Empty:
                continue
            if isinstance(item, End):
                if pending is not None:
                    self._deliver(pending, b.collect)
                return item
            started = self._busy[worker] = now()
            self.taken += 1
            self._taken.set()
            ticket = b.submit(item.x)
            item.x = None  # the input is not needed downstream
            if pending is not None and not self._deliver(pending, b.collect):
                break
            pending = (item, ticket, started)
        return End("")

    def _deliver(self, pending: tuple[Item, Any, float], collect: Callable[[Any], np.ndarray]) -> bool:
        """Collect one output and pass it on. Its inference time runs from its submit, or from the
        previous output if that came later (time queued behind it on the device is not counted twice)."""
        item, ticket, started = pending
        item.out = collect(ticket)
        done = now()
        item.seconds.append(done - max(started, self._last_done))
        self._last_done = done
        self._ema["infer"] = _ema(self._ema["infer"], item.seconds[-1])
        return self._put(self._done, item)

class InlinePipeline:
    """The same stages one frame at a time on the caller's thread, inside :meth:`get` (the loop
    as it was before the pipeline): for 1-core machines, debugging, and before/after figures."""

    def __init__(self, source: Source, to_input: Callable[[np.ndarray], np.ndarray], backend: Any,
                 limits: Limits) -> None:
        self._source, self._to_input, self._backend, self._limits = source, to_input, backend, limits
        self._finishing, self.frames, self.timeouts, self.taken = False, 0, 0, 0

    def start(self) -> InlinePipeline:
        return self

    def get(self, timeout_s: float = POLL_S) -> Item | End | None:
        """Read, preprocess and infer the next frame; End when over; None after a live timeout.
        A failing stage raises (EdgesegError) in the caller, as the loop always did."""
        if (reason := self._limits.reason(self.frames, self._finishing)) is not None:
            return End(reason)
        t0 = now()
        got = self._source.read()
        t1 = now()
        if got.status is ReadStatus.TIMEOUT:
            self.timeouts += 1
            return None
        if got.status is not ReadStatus.OK or got.frame is None:
            return End(f"{got.status.value}: {got.message}")
        x = self._to_input(got.frame.image_bgr)
        t2 = now()
        out = self._backend.infer(x)
        self.frames, self.taken = self.frames + 1, self.taken + 1
        return Item(got.frame, None, [t1 - t0, t2 - t1, now() - t2], out)

    def finish(self) -> None:
        self._finishing = True

    def close(self, join_s: float = 0.0) -> None:
        return None


def _ema(old: float, new: float, weight: float = 0.2) -> float:
    return new if old == 0.0 else (1 - weight) * old + weight * new

