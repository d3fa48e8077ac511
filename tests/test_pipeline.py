"""The pipelined streaming loop (edgeseg.runtime.pipeline): stages overlap, frames stay in order
and complete, live sources are read only when the model can take a frame, worker failures end the
run cleanly. Fake backends and sources make each property deterministic (no timing assertions)."""

from __future__ import annotations

import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from edgeseg.runtime.pipeline import End, Item, Limits, Pipeline
from edgeseg.runtime.sinks import StatsSink
from edgeseg.runtime.sources import Frame, ReadResult, ReadStatus, SourceCounters
from edgeseg.runtime.stream import run_stream

from edgeseg.errors import BackendError

sys.path.insert(0, str(Path(__file__).parent))
from tinyseg import tiny_card  # noqa: E402

HW = (8, 12)


class ListSource:
    """A file-like source of ``n`` frames whose pixels carry the frame index."""

    description, fps = "list", None

    def __init__(self, n: int, live: bool = False, on_read: Any = None) -> None:
        self.n, self.i, self.live, self.on_read = n, 0, live, on_read
        self.closed = False

    def read(self, timeout_s: float | None = None) -> ReadResult:
        if self.on_read is not None:
            self.on_read(self.i)
        if self.i >= self.n:
            return ReadResult(ReadStatus.END, message="end of list")
        frame = Frame(np.full((*HW, 3), self.i, np.uint8), self.i, 0.0, f"{self.i:06d}")
        self.i += 1
        return ReadResult(ReadStatus.OK, frame)

    def counters(self) -> SourceCounters:
        return SourceCounters(produced=self.i)

    def close(self) -> None:
        self.closed = True


class EchoBackend:
    """labels = the frame's pixel value (its index) mod K; ``gate``: runs block on it."""

    name = "echo"

    def __init__(self, k: int = 5, gate: Any = None, fail_at: int | None = None) -> None:
        self.card = tiny_card(HW, k).replace(output_kind="labels", input_kind="bgr-uint8", frame_hw=HW)
        self.k, self.gate, self.fail_at, self.started = k, gate, fail_at, 0

    def infer(self, x: np.ndarray) -> np.ndarray:
        self.started += 1
        if self.gate is not None:
            self.gate(int(x[0, 0, 0, 0]))
        if self.fail_at is not None and int(x[0, 0, 0, 0]) == self.fail_at:
            raise BackendError("device lost")
        return (x[..., 0] % self.k).astype(np.uint8)

    def describe(self) -> dict[str, Any]:
        return {"name": self.name}

    def close(self) -> None:
        return None


class QueuedBackend(EchoBackend):
    """submit/collect/done like the TensorRT backend: runs happen at collect, in submit order;
    the first run is done only once a second one is queued (a slow device: capture keeps up)."""

    def __init__(self) -> None:
        super().__init__()
        self.queue: list[np.ndarray] = []
        self.max_outstanding = 0

    def done(self, ticket: int) -> bool:
        return ticket > 0 or len(self.queue) > 1

    def submit(self, x: np.ndarray) -> int:
        self.queue.append(x.copy())
        self.max_outstanding = max(self.max_outstanding, sum(q is not None for q in self.queue))
        return len(self.queue) - 1

    def collect(self, ticket: int) -> np.ndarray:
        x, self.queue[ticket] = self.queue[ticket], None  # type: ignore[call-overload]
        return self.infer(x)  # type: ignore[arg-type]


def drain(pipe: Pipeline) -> tuple[list[Item], End]:
    items: list[Item] = []
    while True:
        got = pipe.get(timeout_s=10)
        assert got is not None, "pipeline stalled"
        if isinstance(got, End):
            return items, got
        items.append(got)


def test_frames_complete_in_order_with_their_own_outputs() -> None:
    for backend in (EchoBackend(), QueuedBackend()):
        pipe = Pipeline(ListSource(12), lambda im: im[None], backend, Limits()).start()
        items, end = drain(pipe)
        pipe.close()
        assert [it.frame.index for it in items] == list(range(12)) and end.reason == "end: end of list"
        for it in items:
            assert (it.out == it.frame.index % 5).all() and len(it.seconds) == 3
    assert backend.max_outstanding == 2  # the next frame was queued before the previous was collected


def test_preprocessing_overlaps_inference() -> None:
    """Frame 0's inference waits until frame 1 has been preprocessed: only a pipeline finishes."""
    frame1_ready = threading.Event()

    def to_input(image: np.ndarray) -> np.ndarray:
        if image[0, 0, 0] == 1:
            frame1_ready.set()
        return image[None]

    def gate(index: int) -> None:
        if index == 0:
            assert frame1_ready.wait(5), "frame 1 was not preprocessed while frame 0 was inferred"

    pipe = Pipeline(ListSource(3), to_input, EchoBackend(gate=gate), Limits()).start()
    items, end = drain(pipe)
    pipe.close()
    assert len(items) == 3 and not end.reason.startswith("error"), end.reason


def test_live_source_is_read_only_when_the_model_took_the_last_frame() -> None:
    """Newest-frame semantics: frame k is read only after frame k-1 entered inference, so a live
    frame never waits in a queue behind a busy model."""
    seen: list[tuple[int, int]] = []
    holder: list[Pipeline] = []
    source = ListSource(8, live=True, on_read=lambda i: seen.append((i, holder[0].taken)))
    holder.append(Pipeline(source, lambda im: im[None], EchoBackend(), Limits()))
    items, _ = drain(holder[0].start())
    holder[0].close()
    assert len(items) == 8
    assert all(taken >= i for i, taken in seen), seen
    file_like: list[tuple[int, int]] = []  # the same source read as a file runs ahead (the contrast)
    source = ListSource(8, on_read=lambda i: file_like.append((i, holder[1].taken)))
    slow = EchoBackend(gate=lambda i: threading.Event().wait(0.01))
    holder.append(Pipeline(source, lambda im: im[None], slow, Limits()))
    drain(holder[1].start())
    holder[1].close()
    assert any(taken < i for i, taken in file_like), file_like


def test_limits_stop_reading() -> None:
    source = ListSource(100)
    pipe = Pipeline(source, lambda im: im[None], EchoBackend(), Limits(max_frames=5)).start()
    items, end = drain(pipe)
    pipe.close()
    assert len(items) == 5 and source.i == 5 and end.reason == "--max-frames 5 reached"


def test_backend_failure_ends_the_run_with_everything_before_it(tmp_path: Path) -> None:
    stats = tmp_path / "s.jsonl"
    source = ListSource(20)
    report = run_stream(EchoBackend(fail_at=6), source, [StatsSink(stats)])
    assert report.stop_reason == "error: device lost" and report.frames == 6 and source.closed
    assert len(stats.read_text().splitlines()) == 6


def test_a_bug_in_a_worker_is_raised_after_closing(tmp_path: Path) -> None:
    class Broken(EchoBackend):
        def infer(self, x: np.ndarray) -> np.ndarray:
            if x.max() >= 2:  # not in the warm-up (zeros): in the inference thread
                raise ZeroDivisionError("bug")
            return super().infer(x)

    source = ListSource(5)
    with pytest.raises(ZeroDivisionError):
        run_stream(Broken(), source, [StatsSink(tmp_path / "s.jsonl")])
    assert source.closed


def test_report_keeps_stage_names_and_latency(tmp_path: Path) -> None:
    report = run_stream(QueuedBackend(), ListSource(10), [])
    assert report.frames == 10 and report.stop_reason.startswith("end:")
    assert set(report.stages_ms) == {"capture_wait", "preprocess", "inference", "postprocess", "overlay",
                                     "sinks"}
    assert report.latency_ms["mean"] is not None and report.dropped == 0


def test_no_pipeline_gives_the_same_frames_and_report_fields(tmp_path: Path) -> None:
    from edgeseg.runtime.stream import StreamOptions

    reports = [run_stream(QueuedBackend(), ListSource(7), [StatsSink(tmp_path / f"{p}.jsonl")],
                          StreamOptions(max_frames=6, pipelined=p)) for p in (True, False)]
    assert [r.frames for r in reports] == [6, 6]
    assert {r.stop_reason for r in reports} == {"--max-frames 6 reached"}
    lines = [(tmp_path / f"{p}.jsonl").read_text().count("\n") for p in (True, False)]
    assert lines == [6, 6]
    assert reports[0].stages_ms.keys() == reports[1].stages_ms.keys()


class ConcurrentEcho(EchoBackend):
    """EchoBackend whose ``infer`` may run on several threads at once (like onnxruntime)."""

    concurrent_infer = True


def test_inference_workers_run_frames_at_once_and_keep_their_order() -> None:
    """Frame 0's run waits until frame 1's run has started (only two inference threads get past
    it) and so finishes last; the outputs still come out in frame order, each with its own output."""
    second_started = threading.Event()

    def gate(index: int) -> None:
        if index == 1:
            second_started.set()
        if index == 0:
            assert second_started.wait(5), "frame 1 was not inferred while frame 0 was"

    backend = ConcurrentEcho(gate=gate)
    pipe = Pipeline(ListSource(12), lambda im: im[None], backend, Limits(), workers=2).start()
    items, end = drain(pipe)
    pipe.close()
    assert [it.frame.index for it in items] == list(range(12)) and end.reason == "end: end of list"
    assert all((it.out == it.frame.index % 5).all() and len(it.seconds) == 3 for it in items)
    assert not any(t.is_alive() for t in pipe._threads)


def test_inference_workers_in_order_under_uneven_run_times_and_limits() -> None:
    rng = np.random.default_rng(0)
    delays = rng.uniform(0, 0.004, 40)
    backend = ConcurrentEcho(gate=lambda i: threading.Event().wait(delays[i]))
    pipe = Pipeline(ListSource(40), lambda im: im[None], backend, Limits(max_frames=30), workers=3).start()
    items, end = drain(pipe)
    pipe.close()
    assert [it.frame.index for it in items] == list(range(30)) and end.reason == "--max-frames 30 reached"


def test_inference_workers_live_source_read_only_when_a_worker_took_the_last_frame() -> None:
    seen: list[tuple[int, int]] = []
    holder: list[Pipeline] = []
    source = ListSource(10, live=True, on_read=lambda i: seen.append((i, holder[0].taken)))
    holder.append(Pipeline(source, lambda im: im[None], ConcurrentEcho(), Limits(), workers=2))
    items, _ = drain(holder[0].start())
    holder[0].close()
    assert len(items) == 10 and all(taken >= i for i, taken in seen), seen


def test_inference_worker_failure_keeps_every_frame_before_it(tmp_path: Path) -> None:
    from edgeseg.runtime.stream import StreamOptions

    stats = tmp_path / "s.jsonl"
    source = ListSource(20)
    report = run_stream(ConcurrentEcho(fail_at=6), source, [StatsSink(stats)], StreamOptions(infer_workers=2))
    assert report.stop_reason == "error: device lost" and report.frames == 6 and source.closed
    assert len(stats.read_text().splitlines()) == 6 and report.infer_workers == 2


def test_inference_workers_need_a_concurrent_backend_and_the_pipeline() -> None:
    from edgeseg.runtime.stream import StreamOptions

    from edgeseg.errors import ConfigError

    with pytest.raises(ConfigError, match="echo cannot .*drop --infer-workers"):
        run_stream(EchoBackend(), ListSource(3), [], StreamOptions(infer_workers=2))
    with pytest.raises(ConfigError, match="drop --no-pipeline or --infer-workers"):
        run_stream(ConcurrentEcho(), ListSource(3), [], StreamOptions(infer_workers=2, pipelined=False))
    with pytest.raises(ValueError):
        Pipeline(ListSource(3), lambda im: im[None], QueuedBackend(), Limits(), workers=2)


def test_opencv_threads_set_while_the_pipelined_loop_runs_and_restored() -> None:
    import cv2
    from edgeseg.runtime.stream import StreamOptions

    from edgeseg.errors import ConfigError

    class Seen:
        stop_requested = False

        def __init__(self) -> None:
            self.counts: list[int] = []

        def write(self, image: np.ndarray, frame: Frame) -> None:
            self.counts.append(cv2.getNumThreads())

        def log(self, record: Any) -> None:
            return None

        def close(self) -> dict[str, str]:
            return {}

    before = cv2.getNumThreads()
    cv2.setNumThreads(3)
    try:
        runs = {}
        for opts in (StreamOptions(), StreamOptions(opencv_threads=2), StreamOptions(opencv_threads=None),
                     StreamOptions(pipelined=False)):
            sink = Seen()
            run_stream(EchoBackend(), ListSource(3), [sink], opts)
            runs[opts.opencv_threads, opts.pipelined] = set(sink.counts)
            assert cv2.getNumThreads() == 3  # restored
        assert runs == {(1, True): {1}, (2, True): {2}, (None, True): {3}, (1, False): {3}}
        with pytest.raises(ConfigError, match="pass --opencv-threads 1"):
            run_stream(EchoBackend(), ListSource(3), [], StreamOptions(opencv_threads=0))
    finally:
        cv2.setNumThreads(before)
