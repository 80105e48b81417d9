"""A local dask.distributed cluster (2 worker processes, loopback) produces the local run's rows."""
import functools
import math

import numpy as np
import pytest

from helpers import smooth_image
from napari_microcomp._progress import result_of
from napari_microcomp.benchmark import comparable, iter_benchmark

distributed = pytest.importorskip("distributed")


def _same(a, b):
    if a.keys() != b.keys():
        return False
    return all(a[k] == b[k] or (isinstance(a[k], float) and math.isnan(a[k]) and math.isnan(b[k])) for k in a)


def test_two_worker_cluster_gives_identical_rows(tmp_path):
    from scipy.ndimage import uniform_filter

    from napari_microcomp.benchmark.distributed import open_client

    codecs = ["jpegls", "jpeg2k", "zstd"]
    try:  # a learned codec too (tiny random weights): its streams must not depend on the process
        from napari_microcomp.models import registry
        from napari_microcomp import weights as wt

        arch = "bmshj2018-factorized"
        w = wt.export_weights(registry.build_model(arch, 1, N=8, M=8), arch, tmp_path / "tiny.pt", 1,
                               {"N": 8, "M": 8}, {"note": "random init, test only"})
        codecs.append({"id": arch, "quality": 1, "weights": str(w)})
    except ImportError:  # pragma: no cover - torch/compressai missing
        pass

    images = {"a": smooth_image((64, 72), np.uint16, seed=1, bits=12),
              "b": smooth_image((56, 64), np.uint16, seed=2)}
    gt = {"a": uniform_filter(images["a"], 3).astype(np.float32) + 5}
    predictor = functools.partial(uniform_filter, size=5)  # picklable by reference, like ModelPredictor
    kwargs = dict(codecs=codecs, qualities=[2, 5], predictor=predictor, ground_truth=gt)
    local = result_of(iter_benchmark(images, **kwargs))
    with open_client(workers=2) as client:
        assert len(client.scheduler_info()["workers"]) == 2
        assert all(a.startswith("tcp://127.0.0.1:") for a in client.scheduler_info()["workers"])
        events = []
        gen = iter_benchmark(images, client=client, **kwargs)
        try:
            while True:
                events.append(next(gen))
        except StopIteration as stop:
            remote = stop.value
        # cancellation on the cluster: stop after the first finished row
        done = []
        cancelled = result_of(iter_benchmark(images, client=client, should_stop=lambda: len(done) > 0 or
                                             done.append(1), **kwargs))
    assert len(remote) == len(local) == 2 * (5 + len(codecs) - 3)
    diffs = [(r["label"], k, r[k], s[k]) for r, s in zip(local, remote) for k in comparable(r)
             if not _same({k: r[k]}, {k: s[k]})]
    assert not diffs
    assert all(r["status"] == "ok" for r in remote) and not math.isnan(remote[0]["p2_pearson_r"])
    assert sorted(e.payload["label"] for e in events if e.stage == "row") == sorted(r["label"] for r in local)
    assert 1 <= len(cancelled) < len(local)
