"""The two-phase benchmark engine: one row per (image, codec configuration).

Phase 1 compresses each image with each codec configuration and measures the stream and the
reconstruction. Phase 2 (when a ``predictor`` is given) runs a label-free model on the original
and on every reconstruction and compares the predictions with the ground truth and with each
other: does compression change the science?

Use::

    from napari_microcomp.benchmark import iter_benchmark
    from napari_microcomp._progress import drain
    rows = drain(iter_benchmark({"cell": img}, ["jpegxl", "jpeg2k"], qualities=[2, 4, 6]))

:func:`iter_benchmark` is a generator: it yields :class:`~napari_microcomp._progress.Progress`
events and returns the list of rows (``StopIteration.value``). Events with ``stage == "row"``
carry the finished row in ``payload``; events of other stages (``"reference"``: the prediction
from an original image, ``"cancelled"``) carry ``None``. Rows come back in plan order (images
outer, codec configurations inner), also when computed on a dask cluster.

Row keys (stable; every row has all of them, see ``ROW_KEYS``; NaN/None where not applicable):

==================  ====================================================================
image               image name
shape, dtype        the image's shape (list) and dtype name
codec, family       codec id and family (classical, lossless, learned, volumetric)
label               short label, e.g. ``jpegxl q4``
quality             quality 1..8 (None for lossless or native-parameter configs)
method              curve name: codec id plus any parameters other than quality
config              ``codec.get_config()``: ``codec_from_config(row["config"])`` re-runs the row
status, error       ``"ok"`` or ``"error"``; the error text of a failing codec, else None
note                non-fatal remarks (e.g. phase 2 failed for this row), else None
raw_bytes           bytes of the uncompressed array
compressed_bytes    bytes of the whole stream (container header included)
compression_ratio   raw_bytes / compressed_bytes
bpp                 bits per pixel (per voxel in 3D) of the whole stream
encode_s, decode_s  wall seconds of encode and decode (learned models are loaded beforehand)
mse, psnr, ssim, ms_ssim, pearson_r, max_abs_error
                    reconstruction vs original (``metrics`` module; PSNR/SSIM peak = data_range)
mean_error          mean of reconstruction − original (data units): an intensity shift, signed
data_range          the peak used for PSNR/SSIM (``metrics.data_range`` of the original)
p2_psnr, p2_ssim, p2_pearson_r
                    phase 2: prediction from the reconstruction vs ground truth
p2_ref_psnr, p2_ref_ssim, p2_ref_pearson_r
                    phase 2: prediction from the reconstruction vs prediction from the original
p2_orig_psnr, p2_orig_ssim, p2_orig_pearson_r
                    phase 2: prediction from the original vs ground truth (same for all rows
                    of one image; computed once per image)
predict_s           wall seconds of the prediction from the reconstruction
==================  ====================================================================

Phase-2 scores follow :func:`napari_microcomp.labelfree.compare`: with a model predictor the
ground truth is normalized like the model's targets, and all phase-2 PSNR/SSIM of one image use
one peak, the range of that normalized ground truth (see :func:`image_reference`).

A codec that raises records ``status="error"`` and its message in its row and the run goes on;
unknown codec names fail before any work starts (a typo should not cost a long run).
"""
from typing import Any, Callable, Dict, Generator, List, Optional, Sequence

import numpy as np

from .. import metrics
from .._progress import Progress, checkpoint
from .distributed import iter_plan_distributed
from .rows import (FLOAT_KEYS, INT_KEYS, ROW_KEYS, TIMING_KEYS, CodecSpec, ImagesLike, Plan, Predictor, Row,
                   empty_row, expand_codecs, image_reference, method_name, named_images, run_row, safe_reference)


def iter_benchmark(images: ImagesLike, codecs: Sequence[CodecSpec], qualities: Optional[Sequence[int]] = None,
                   predictor: Optional[Predictor] = None, ground_truth=None,
                   should_stop: Optional[Callable[[], bool]] = None, *,
                   data_range: metrics.DataRange = "image", with_ms_ssim: bool = True,
                   phase2_qualities: Optional[Sequence[int]] = None,
                   client=None) -> Generator[Progress, None, List[Row]]:
    """Benchmark every codec configuration on every image; yield progress, return the rows.

    Parameters
    ----------
    images
        Mapping name -> array, sequence of ``(name, array)`` or of arrays, or one array (2D/3D).
    codecs
        Codec names (expanded over ``qualities``), :class:`Codec` objects or codec configs.
    qualities
        Levels 1..8 for codecs given by name (default: all eight).
    predictor
        Optional label-free model ``array -> array`` (e.g. :class:`ModelPredictor`); enables phase 2.
    ground_truth
        Optional mapping image name -> ground-truth array (or a sequence aligned with ``images``).
        When given, phase 2 runs only on the images that have one.
    should_stop
        Called between rows; returning True ends the run early with the rows finished so far.
    data_range
        Peak for PSNR/SSIM, see :func:`napari_microcomp.metrics.data_range`.
    with_ms_ssim
        Compute MS-SSIM (imports torch; NaN for images under 161 px).
    phase2_qualities
        Levels whose rows get phase 2 (default: all). A label-free prediction costs seconds per
        image on a CPU; rows of other levels keep NaN phase-2 metrics. Lossless rows always get
        them.
    client
        A ``dask.distributed.Client``: rows are computed on its workers (see ``distributed``).

    Yields
    ------
    Progress
        ``stage="row"`` with the finished row in ``payload``; ``"reference"`` and ``"cancelled"``
        events carry no payload.

    Returns
    -------
    list of dict
        One row per (image, config), in plan order; see the module docstring for the keys.
    """
    plan = Plan(images, codecs, qualities, predictor, ground_truth, phase2_qualities)
    opts = {"data_range": data_range, "with_ms_ssim": with_ms_ssim}
    if client is not None:
        return (yield from iter_plan_distributed(client, plan, should_stop=should_stop, **opts))
    return (yield from _iter_plan_local(plan, should_stop=should_stop, **opts))


def _iter_plan_local(plan: Plan, should_stop=None, **opts) -> Generator[Progress, None, List[Row]]:
    rows: List[Row] = []
    total = len(plan)
    references: Dict[str, Dict[str, Any]] = {}
    for i, j in plan.tasks:
        if should_stop is not None and should_stop():
            yield Progress("cancelled", len(rows), total, f"cancelled after {len(rows)} of {total} rows")
            return rows
        name, image = plan.images[i]
        reference = None
        if plan.phase2_for(i, j):
            if name not in references:
                yield Progress("reference", len(rows), total, f"{name}: prediction from the original")
                references[name] = safe_reference(image, plan.predictor, plan.ground_truth.get(name))
            reference = references[name]
        checkpoint("row", len(rows), total, f"{name}: {method_name(plan.configs[j])}")  # GUI: row start
        row = run_row(name, image, plan.configs[j], predictor=plan.predictor, reference=reference,
                      source=plan.sources[name], **opts)
        rows.append(row)
        yield Progress("row", len(rows), total, f"{name}: {row['label']}", payload=row)
    return rows


class ModelPredictor:
    """A picklable predictor for a label-free model by name or path (phase 2).

    The model is loaded on first call in each process (so it can travel to dask workers as a name)
    and then reused. ``tta=True`` averages the 8 rotations/flips (8x the prediction time, in ``predict_s``).
    """

    def __init__(self, model: str, device: str = "cpu", tta: bool = False):
        self.model = str(model)
        self.device = device
        self.tta = bool(tta)
        self._loaded = None

    def _get(self):
        if self._loaded is None:
            from ..labelfree import load_model

            self._loaded = load_model(self.model, device=self.device)
        return self._loaded

    def check(self) -> None:
        """Load the model now, raising WeightsNotFoundError if its weights are missing."""
        self._get()

    def __call__(self, image: np.ndarray) -> np.ndarray:
        return self._get().predict(image, tta=self.tta)

    def normalize_target(self, target: np.ndarray) -> np.ndarray:
        """The ground truth in the model's normalized units (what its predictions are in)."""
        return self._get().normalize_target(target)

    def __getstate__(self):
        return {"model": self.model, "device": self.device, "tta": self.tta, "_loaded": None}

    def __repr__(self) -> str:
        return f"ModelPredictor({self.model!r}{', tta=True' if self.tta else ''})"


def comparable(row: Row) -> Row:
    """The row without its timings: what must be identical between two runs of the same plan."""
    return {k: v for k, v in row.items() if k not in TIMING_KEYS}


__all__ = ["ROW_KEYS", "TIMING_KEYS", "FLOAT_KEYS", "INT_KEYS", "Plan", "ModelPredictor", "comparable",
           "empty_row", "expand_codecs", "image_reference", "iter_benchmark", "method_name", "named_images",
           "run_row"]
