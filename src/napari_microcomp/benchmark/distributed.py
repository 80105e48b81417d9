"""Benchmark rows on a dask.distributed cluster: the same rows as a local run, computed elsewhere.

Each row is one task running :func:`~napari_microcomp.benchmark.rows.run_row` (a pure function
of its inputs). Images, ground truths and the predictor are scattered once; the prediction from
each original image is one task that the rows of that image depend on. Rows are yielded as they
finish and returned in plan order, so a distributed run returns exactly what a local run returns
(timings aside).

Workers are started with one thread each: two rows sharing a process would distort each
other's timings and fight over torch's thread pool (dask's nanny also sets OMP_NUM_THREADS=1).
Remote workers (``--scheduler``) need napari-microcomp installed.
"""
import contextlib
import logging
import uuid
from typing import Generator, Iterator, List, Optional

from .._progress import Progress
from ..errors import MicrocompError
from .rows import Plan, Row, empty_row, run_row, safe_reference


@contextlib.contextmanager
def open_client(workers: Optional[int] = None, scheduler: Optional[str] = None) -> Iterator["object"]:
    """A ``dask.distributed.Client``: to ``scheduler`` (an address) or to a new local cluster.

    Parameters
    ----------
    workers
        Number of local worker processes (one thread each), on the loopback interface.
    scheduler
        Address of a running scheduler, e.g. ``tcp://10.0.0.5:8786``; wins over ``workers``.
    """
    try:
        from distributed import Client, LocalCluster
    except ImportError as exc:  # pragma: no cover - a declared dependency
        raise MicrocompError("dask.distributed is needed for --workers/--scheduler: pip install distributed") from exc
    if scheduler:
        try:
            client = Client(scheduler, timeout="20s")
        except OSError as exc:
            raise MicrocompError(f"cannot reach the dask scheduler at {scheduler}: {exc}") from exc
        try:
            yield client
        finally:
            client.close()
        return
    n = int(workers or 1)
    if n < 1:
        raise MicrocompError(f"--workers must be ≥ 1, got {n}")
    cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, host="127.0.0.1",
                           dashboard_address=None, silence_logs=logging.ERROR)
    try:
        with Client(cluster) as client:
            yield client
    finally:
        cluster.close()


def preload() -> None:
    """Import what rows need before any task runs on a worker.

    A worker unpickles task arguments on its event-loop thread while the task thread runs; two
    threads importing the same packages (scipy, torch, the lazily registered learned codecs) can
    hit Python's import deadlock detection (measured: ``_DeadlockError`` in a row). Importing
    everything once, up front, removes the race.
    """
    import scipy.ndimage  # noqa: F401
    import skimage.metrics  # noqa: F401

    from ..codecs import available_codecs

    available_codecs()
    try:
        import pytorch_msssim  # noqa: F401
    except ImportError:  # pragma: no cover - MS-SSIM is then NaN anyway
        pass


def iter_plan_distributed(client, plan: Plan, should_stop=None, **opts) -> Generator[Progress, None, List[Row]]:
    """Run ``plan`` on ``client``'s workers; same events and result as the local loop."""
    from distributed import as_completed

    client.run(preload)  # on every current worker, before any row is submitted
    run = uuid.uuid4().hex[:8]
    total = len(plan)
    image_f = {name: client.scatter(img) for name, img in plan.images}
    references = {}
    if plan.phase2_names:
        predictor_f = client.scatter(plan.predictor)
        for name in plan.phase2_names:
            gt = plan.ground_truth.get(name)
            references[name] = client.submit(safe_reference, image_f[name], predictor_f,
                                              client.scatter(gt) if gt is not None else None,
                                              key=f"microcomp-reference-{run}-{name}", pure=False)
    else:
        predictor_f = None
    futures, index = [], {}
    for k, (i, j) in enumerate(plan.tasks):
        name, _ = plan.images[i]
        ref = references.get(name) if plan.phase2_for(i, j) else None
        fut = client.submit(run_row, name, image_f[name], plan.configs[j],
                            predictor=predictor_f if ref is not None else None, reference=ref,
                            source=plan.sources[name],
                            key=f"microcomp-row-{run}-{k}", pure=False, priority=-k, **opts)
        futures.append(fut)
        index[fut.key] = k
    results: List[Optional[Row]] = [None] * total
    done = 0
    try:
        if plan.phase2_names:
            yield Progress("reference", 0, total, "predictions from the originals")
        for fut in as_completed(futures):
            k = index[fut.key]
            try:
                row = fut.result()
            except Exception as exc:  # the worker died or the task could not run: record, go on
                i, j = plan.tasks[k]
                name = plan.images[i][0]
                row = empty_row(name, plan.images[i][1], plan.configs[j], plan.sources[name])
                row.update(status="error", error=f"{type(exc).__name__}: {exc}")
            results[k] = row
            done += 1
            yield Progress("row", done, total, f"{row['image']}: {row['label']}", payload=row)
            if should_stop is not None and should_stop() and done < total:
                yield Progress("cancelled", done, total, f"cancelled after {done} of {total} rows")
                break
    finally:
        client.cancel([f for f in futures if not f.done()])
    return [r for r in results if r is not None]


__all__ = ["iter_plan_distributed", "open_client"]
