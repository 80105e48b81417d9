"""Checkpoints (issue 12): fine steps reach a reporter; Cancelled stops the work between them;
without a reporter nothing changes (streams are the same)."""
import numpy as np
import pytest

from napari_microcomp._progress import Cancelled, drain, reporting
from napari_microcomp.benchmark import iter_benchmark
from napari_microcomp.codecs import get_codec
from napari_microcomp.samples import skimage_cell


def test_benchmark_reports_row_starts_and_row_stages():
    cell = skimage_cell()
    seen = []
    with reporting(lambda stage, done, total, msg: seen.append((stage, done, total))):
        rows = drain(iter_benchmark({"cell": cell}, ["jpeg2k"], qualities=[2, 6]), show=False)
    assert [r["status"] for r in rows] == ["ok", "ok"]
    assert [s for s in seen if s[0] == "row"] == [("row", 0, 2), ("row", 1, 2)]
    assert {"decode", "metrics"} <= {s[0] for s in seen}


def test_cancel_between_slices_and_same_stream_without_reporter():
    stack = np.ascontiguousarray(np.tile(skimage_cell()[:128, :128], (6, 1, 1)))
    codec = get_codec("jpegxl", quality=4)
    plain = codec.encode(stack)
    calls = []

    def count(stage, done, total, msg):
        calls.append(stage)

    with reporting(count):
        assert codec.encode(stack) == plain  # reporting changes nothing in the stream
    assert calls.count("encode") == 6

    def stop_at_third(stage, done, total, msg):
        if stage == "encode" and done == 2:
            raise Cancelled()

    with reporting(stop_at_third), pytest.raises(Cancelled):
        drain(iter_benchmark({"stack": stack}, ["jpegxl"], qualities=[4]), show=False)


def test_progress_into_a_log_file_is_rate_limited(monkeypatch):
    """Not a terminal: a tiled run of 1,369 tiles wrote 1,369 bar updates to the log in a second."""
    import io

    from napari_microcomp._progress import Progress

    def gen():
        for i in range(1, 1001):
            yield Progress("compress", i, 1000, f"tile {i}/1000")
        return "done"

    log = io.StringIO()
    monkeypatch.setattr("sys.stderr", log)
    assert drain(gen(), desc="compress") == "done"
    assert log.getvalue().count("tile ") <= 3
