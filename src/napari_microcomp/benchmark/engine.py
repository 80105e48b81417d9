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
import math
import time
from typing import (Any, Callable, Dict, Generator, List, Mapping, Optional, Sequence, Tuple,
                    Union)

import numpy as np

from .. import metrics
from .._progress import Progress
from .._validate import check_image
from ..codecs import QUALITIES, Codec, codec_class, codec_from_config
from ..errors import InputError

Row = Dict[str, Any]
Predictor = Callable[[np.ndarray], np.ndarray]
ImagesLike = Union[Mapping[str, Any], Sequence[Any], np.ndarray]
CodecSpec = Union[str, Codec, Mapping[str, Any]]

ID_KEYS = ("image", "shape", "dtype", "codec", "family", "label", "quality", "method", "config",
           "status", "error", "note")
PHASE1_KEYS = ("raw_bytes", "compressed_bytes", "compression_ratio", "bpp", "encode_s", "decode_s",
               "mse", "psnr", "ssim", "ms_ssim", "pearson_r", "max_abs_error", "data_range")
PHASE2_KEYS = ("p2_psnr", "p2_ssim", "p2_pearson_r", "p2_ref_psnr", "p2_ref_ssim", "p2_ref_pearson_r",
               "p2_orig_psnr", "p2_orig_ssim", "p2_orig_pearson_r", "predict_s")
ROW_KEYS = ID_KEYS + PHASE1_KEYS + PHASE2_KEYS
# Keys that legitimately differ between two runs of the same plan.
TIMING_KEYS = ("encode_s", "decode_s", "predict_s")
INT_KEYS = ("quality", "raw_bytes", "compressed_bytes")
FLOAT_KEYS = tuple(k for k in PHASE1_KEYS + PHASE2_KEYS if k not in INT_KEYS)
WARMUP_FAMILIES = ("learned", "volumetric")


# -- inputs ---------------------------------------------------------------------------------------
def named_images(images: ImagesLike) -> List[Tuple[str, np.ndarray]]:
    """Normalise ``images`` to ``[(name, array), ...]``.

    Accepts a mapping name -> array, a sequence of ``(name, array)`` pairs or of arrays (named
    ``image0``, ``image1``, ...), or one array. Arrays are checked with ``check_image`` (never
    modified); dask arrays are computed.
    """
    if isinstance(images, Mapping):
        items = list(images.items())
    elif isinstance(images, np.ndarray) or (hasattr(images, "__array__") and not isinstance(images, (list, tuple))):
        items = [("image", images)]
    else:
        items = []
        for i, item in enumerate(images):
            if isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str):
                items.append(item)
            else:
                items.append((f"image{i}", item))
    if not items:
        raise InputError("no images to benchmark")
    names = [str(n) for n, _ in items]
    if len(set(names)) != len(names):
        raise InputError(f"image names must be unique, got {names}")
    return [(n, check_image(np.asarray(a))) for n, (_, a) in zip(names, items)]


def _ground_truths(ground_truth, names: Sequence[str]) -> Dict[str, np.ndarray]:
    if ground_truth is None:
        return {}
    if isinstance(ground_truth, Mapping):
        unknown = set(ground_truth) - set(names)
        if unknown:
            raise InputError(f"ground truth given for unknown image(s) {sorted(unknown)}; images: {list(names)}")
        pairs = list(ground_truth.items())
    elif isinstance(ground_truth, np.ndarray) and len(names) == 1:
        pairs = [(names[0], ground_truth)]
    else:
        gts = list(ground_truth)
        if len(gts) != len(names):
            raise InputError(f"{len(gts)} ground-truth image(s) for {len(names)} image(s); give one per "
                             "image (None where there is none) or a mapping name -> array")
        pairs = list(zip(names, gts))
    return {n: np.asarray(g) for n, g in pairs if g is not None}


def expand_codecs(codecs: Sequence[CodecSpec], qualities: Optional[Sequence[int]] = None) -> List[Dict[str, Any]]:
    """Codec specs -> list of codec configs, one per benchmark row and image.

    A name expands to one config per quality in ``qualities`` (default 1..8), or a single
    lossless config for lossless-only codecs; a :class:`Codec` or a config dict is used as is.
    Unknown names raise :class:`~napari_microcomp.errors.CodecError` right away.
    """
    levels = list(QUALITIES if qualities is None else qualities)
    out: List[Dict[str, Any]] = []
    for spec in codecs:
        if isinstance(spec, Codec):
            out.append(spec.get_config())
        elif isinstance(spec, Mapping):
            out.append(dict(spec))
        elif isinstance(spec, str):
            cls = codec_class(spec)
            if cls.lossless_only:
                out.append({"id": spec, "quality": None, "lossless": True})
            else:
                out.extend({"id": spec, "quality": int(q), "lossless": False} for q in levels)
        else:
            raise InputError(f"not a codec, codec name or codec config: {spec!r}")
    return out


# -- one row --------------------------------------------------------------------------------------
# Config keys that do not make a different method: the level itself, execution details, and weight
# files (learned codecs have one file per level, so a path would split every curve into points).
NOT_METHOD_KEYS = ("id", "quality", "lossless", "threads", "numthreads", "weights", "weights_id")


def method_name(config: Mapping[str, Any]) -> str:
    """The RD-curve a config belongs to: its codec id plus any parameter other than the level."""
    extra = {k: v for k, v in config.items() if k not in NOT_METHOD_KEYS and v is not None}
    if not extra:
        return str(config.get("id"))
    parts = (f"{k}={method_name(v) if isinstance(v, Mapping) and 'id' in v else v}" for k, v in sorted(extra.items()))
    return f"{config.get('id')}(" + ",".join(parts) + ")"


def empty_row(name: str, image: np.ndarray, config: Mapping[str, Any]) -> Row:
    """A row with every key: identity filled in, every measurement NaN."""
    row: Row = {k: math.nan for k in ROW_KEYS}
    cfg = dict(config)
    row.update(image=name, shape=list(image.shape), dtype=image.dtype.name, codec=str(cfg.get("id")),
               family=None, label=str(cfg.get("id")), quality=cfg.get("quality"), method=method_name(cfg),
               config=cfg, status="ok", error=None, note=None, raw_bytes=int(image.nbytes),
               compressed_bytes=None)
    return row


def _phase2_metrics(reference: np.ndarray, prediction: np.ndarray, peak: float) -> Tuple[float, float, float]:
    ref = np.asarray(reference, dtype=np.float32)
    pred = np.asarray(prediction, dtype=np.float32)
    return metrics.psnr(ref, pred, peak), metrics.ssim(ref, pred, peak), metrics.pearson(ref, pred)


def image_reference(image: np.ndarray, predictor: Predictor,
                    ground_truth: Optional[np.ndarray] = None) -> Dict[str, Any]:
    """Prediction from the original image and, with a ground truth, its phase-2 metrics.

    Same convention as :func:`napari_microcomp.labelfree.compare`: a predictor with a
    ``normalize_target`` method (e.g. :class:`ModelPredictor`) predicts in normalized units, so
    the ground truth is normalized the same way first; every phase-2 PSNR/SSIM of the image uses
    one peak: the range of the (normalized) ground truth, or without one, of the prediction from
    the original.
    """
    t0 = time.perf_counter()
    pred = np.asarray(predictor(image), dtype=np.float32)
    out: Dict[str, Any] = {"prediction": pred, "predict_s": time.perf_counter() - t0, "ground_truth": None,
                           "error": None, "peak": metrics.data_range(pred, "image")}
    if ground_truth is not None:
        norm = getattr(predictor, "normalize_target", None)
        gt = np.asarray(norm(ground_truth) if callable(norm) else ground_truth, dtype=np.float32)
        out["ground_truth"] = gt
        out["peak"] = metrics.data_range(gt, "image")
        out["p2_orig_psnr"], out["p2_orig_ssim"], out["p2_orig_pearson_r"] = _phase2_metrics(gt, pred, out["peak"])
    return out


def _warm_up(codec: Codec, image: np.ndarray) -> None:
    """Load a learned model outside the timed region (a small crop, result discarded)."""
    crop = image[(...,) + tuple(slice(0, min(64, s)) for s in image.shape[-2:])]
    codec.decode(codec.encode(crop))


def run_row(name: str, image: np.ndarray, config: Mapping[str, Any], *,
            predictor: Optional[Predictor] = None, reference: Optional[Mapping[str, Any]] = None,
            data_range: metrics.DataRange = "image", with_ms_ssim: bool = True) -> Row:
    """Compute one row (pure function of its arguments; what dask workers run).

    ``reference`` is :func:`image_reference`'s result for this image; phase 2 runs when it and
    ``predictor`` are given. Any exception of the codec is recorded in the row.
    """
    row = empty_row(name, image, config)
    try:
        codec = codec_from_config(dict(config))
        row.update(codec=codec.codec_id, family=codec.family, label=codec.label, quality=codec.quality,
                   config=codec.get_config(), method=method_name(codec.get_config()))
        if codec.family in WARMUP_FAMILIES:
            _warm_up(codec, image)
        t0 = time.perf_counter()
        stream = codec.encode(image)
        t1 = time.perf_counter()
        recon = codec.decode(stream)
        t2 = time.perf_counter()
        row.update(metrics.all_metrics(image, recon, len(stream), data_range, with_ms_ssim))
        row.update(encode_s=t1 - t0, decode_s=t2 - t1, compressed_bytes=len(stream),
                   max_abs_error=float(np.max(np.abs(image.astype(np.float64) - recon.astype(np.float64)))))
    except Exception as exc:  # a failing codec must not end the run: its row says why
        row.update(status="error", error=f"{type(exc).__name__}: {exc}")
        return row
    if predictor is not None and reference is not None:
        _phase2(row, image, recon, predictor, reference)
    return row


def _phase2(row: Row, image: np.ndarray, recon: np.ndarray, predictor: Predictor,
            reference: Mapping[str, Any]) -> None:
    if reference.get("error"):
        row["note"] = f"phase 2 skipped: {reference['error']}"
        return
    try:
        t0 = time.perf_counter()
        if np.array_equal(recon, image):  # lossless: the prediction is the original's, no need to rerun
            pred = reference["prediction"]
        else:
            pred = np.asarray(predictor(recon), dtype=np.float32)
        row["predict_s"] = time.perf_counter() - t0
        gt, peak = reference.get("ground_truth"), reference["peak"]
        if gt is not None:
            row["p2_psnr"], row["p2_ssim"], row["p2_pearson_r"] = _phase2_metrics(gt, pred, peak)
            for k in ("p2_orig_psnr", "p2_orig_ssim", "p2_orig_pearson_r"):
                row[k] = reference[k]
        row["p2_ref_psnr"], row["p2_ref_ssim"], row["p2_ref_pearson_r"] = _phase2_metrics(
            reference["prediction"], pred, peak)
    except Exception as exc:  # phase 2 failing keeps the phase-1 numbers
        row["note"] = f"phase 2 failed: {type(exc).__name__}: {exc}"


def safe_reference(image: np.ndarray, predictor: Predictor,
                   ground_truth: Optional[np.ndarray]) -> Dict[str, Any]:
    """:func:`image_reference`, recording a failure instead of raising."""
    try:
        return image_reference(image, predictor, ground_truth)
    except Exception as exc:
        return {"error": f"prediction from the original failed: {type(exc).__name__}: {exc}"}


# -- the run --------------------------------------------------------------------------------------
class Plan:
    """The images, configs and phase-2 inputs of one run, in row order."""

    def __init__(self, images: ImagesLike, codecs: Sequence[CodecSpec], qualities=None,
                 predictor: Optional[Predictor] = None, ground_truth=None,
                 phase2_qualities: Optional[Sequence[int]] = None):
        self.images = named_images(images)
        self.configs = expand_codecs(codecs, qualities)
        if not self.configs:
            raise InputError("no codecs to benchmark")
        names = [n for n, _ in self.images]
        self.ground_truth = _ground_truths(ground_truth, names)
        self.predictor = predictor
        # With ground truth for some images, phase 2 runs on those only: a phase -> DAPI model
        # says nothing about an image that is not a phase image.
        self.phase2_names = ([n for n in names if n in self.ground_truth] if self.ground_truth else names) \
            if predictor is not None else []
        self.phase2_qualities = None if phase2_qualities is None else {int(q) for q in phase2_qualities}
        self.tasks = [(i, j) for i in range(len(self.images)) for j in range(len(self.configs))]

    def phase2_for(self, i: int, j: int) -> bool:
        """Whether the row of image ``i`` and config ``j`` gets phase-2 metrics."""
        if self.images[i][0] not in self.phase2_names:
            return False
        q = self.configs[j].get("quality")
        return self.phase2_qualities is None or q is None or q in self.phase2_qualities

    def __len__(self) -> int:
        return len(self.tasks)


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
        them (their prediction is the original's).
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
        from .distributed import iter_plan_distributed

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
        row = run_row(name, image, plan.configs[j], predictor=plan.predictor, reference=reference, **opts)
        rows.append(row)
        yield Progress("row", len(rows), total, f"{name}: {row['label']}", payload=row)
    return rows


class ModelPredictor:
    """A picklable predictor for a label-free model by name or path (phase 2).

    The model is loaded on first call in each process (so it can travel to dask workers as a name)
    and then reused.
    """

    def __init__(self, model: str, device: str = "cpu"):
        self.model = str(model)
        self.device = device
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
        return self._get().predict(image)

    def normalize_target(self, target: np.ndarray) -> np.ndarray:
        """The ground truth in the model's normalized units (what its predictions are in)."""
        return self._get().normalize_target(target)

    def __getstate__(self):
        return {"model": self.model, "device": self.device, "_loaded": None}

    def __repr__(self) -> str:
        return f"ModelPredictor({self.model!r})"


def comparable(row: Row) -> Row:
    """The row without its timings: what must be identical between two runs of the same plan."""
    return {k: v for k, v in row.items() if k not in TIMING_KEYS}


__all__ = ["ROW_KEYS", "TIMING_KEYS", "FLOAT_KEYS", "INT_KEYS", "Plan", "ModelPredictor", "comparable",
           "empty_row", "expand_codecs", "image_reference", "iter_benchmark", "method_name", "named_images",
           "run_row"]
