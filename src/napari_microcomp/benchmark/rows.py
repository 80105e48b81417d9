"""One benchmark row: the row keys, the plan, and the pure function that computes a row.

Both runners use it: the local loop (:mod:`.engine`) and the dask workers (:mod:`.distributed`).
See :mod:`.engine` for the meaning of every row key.
"""
import math
import time
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from .. import container, metrics
from .._progress import checkpoint
from .._validate import as_array, check_image
from ..codecs import QUALITIES, Codec, codec_class, codec_from_config
from ..errors import InputError
from ..labelfree.compare import prediction_scores
from ..labelfree.model import input_caveat

Row = Dict[str, Any]
Predictor = Callable[[np.ndarray], np.ndarray]
ImagesLike = Union[Mapping[str, Any], Sequence[Any], np.ndarray]
CodecSpec = Union[str, Codec, Mapping[str, Any]]

ID_KEYS = ("image", "shape", "dtype", "codec", "family", "label", "quality", "method", "config",
           "status", "error", "note")
PHASE1_KEYS = ("raw_bytes", "compressed_bytes", "compression_ratio", "bpp", "encode_s", "decode_s",
               "mse", "psnr", "ssim", "ms_ssim", "pearson_r", "max_abs_error", "mean_error",
               "data_range")
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
    return [(n, check_image(a)) for n, a in _named_arrays(images)]


def _named_arrays(images: ImagesLike) -> List[Tuple[str, np.ndarray]]:
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
    return [(n, np.asarray(a)) for n, (_, a) in zip(names, items)]


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


def source_of(array) -> Tuple[str, int]:
    """(dtype name, bytes) of the caller's array, which may be coded in another type (float16 as float32)."""
    a = as_array(array)
    return a.dtype.name, int(a.nbytes)


def empty_row(name: str, image: np.ndarray, config: Mapping[str, Any],
              source: Optional[Tuple[str, int]] = None) -> Row:
    """A row with every key: identity filled in, every measurement NaN. ``source``: :func:`source_of` the
    caller's array (default: ``image``'s)."""
    row: Row = {k: math.nan for k in ROW_KEYS}
    cfg = dict(config)
    dtype, raw = source or source_of(image)
    row.update(image=name, shape=list(image.shape), dtype=dtype, codec=str(cfg.get("id")),
               family=None, label=str(cfg.get("id")), quality=cfg.get("quality"), method=method_name(cfg),
               config=cfg, status="ok", error=None, note=None, raw_bytes=raw,
               compressed_bytes=None)
    return row


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
    norm = getattr(predictor, "normalize_target", None)
    if callable(norm):   # a label-free model (transmitted light in): a fluorescence image is said
        out["caveat"] = input_caveat(image)
    if ground_truth is not None:
        gt = np.asarray(norm(ground_truth) if callable(norm) else ground_truth, dtype=np.float32)
        out["ground_truth"] = gt
        out["peak"] = metrics.data_range(gt, "image")
        out["p2_orig_psnr"], out["p2_orig_ssim"], out["p2_orig_pearson_r"] = prediction_scores(gt, pred, out["peak"])
    return out


def _warm_up(codec: Codec, image: np.ndarray) -> None:
    """Load a learned model outside the timed region (a small crop, result discarded)."""
    crop = image[(...,) + tuple(slice(0, min(64, s)) for s in image.shape[-2:])]
    codec.decode(codec.encode(crop))


def run_row(name: str, image: np.ndarray, config: Mapping[str, Any], *,
            predictor: Optional[Predictor] = None, reference: Optional[Mapping[str, Any]] = None,
            data_range: metrics.DataRange = "image", with_ms_ssim: bool = True,
            source: Optional[Tuple[str, int]] = None) -> Row:
    """Compute one row (pure function of its arguments; what dask workers run).

    ``reference`` is :func:`image_reference`'s result for this image; phase 2 runs when it and
    ``predictor`` are given. Any exception of the codec is recorded in the row.
    """
    row = empty_row(name, image, config, source)
    try:
        codec = codec_from_config(dict(config))
        row.update(codec=codec.codec_id, family=codec.family, label=codec.label, quality=codec.quality,
                   config=codec.get_config(), method=method_name(codec.get_config()))
        if codec.family in WARMUP_FAMILIES:
            _warm_up(codec, image)
        t0 = time.perf_counter()
        stream = codec.encode(image)
        t1 = time.perf_counter()
        checkpoint("decode", 1, 3, row["label"])
        recon = codec.decode(stream)
        t2 = time.perf_counter()
        checkpoint("metrics", 2, 3, row["label"])
        row.update(metrics.all_metrics(image, recon, len(stream), data_range, with_ms_ssim, row["raw_bytes"]))
        row.update(encode_s=t1 - t0, decode_s=t2 - t1, compressed_bytes=len(stream),
                   max_abs_error=float(np.max(np.abs(image.astype(np.float64) - recon.astype(np.float64)))))
        for note in codec.notes(image, container.read_header(stream)[0]):
            _add_note(row, note)
    except Exception as exc:  # a failing codec must not end the run: its row says why
        row.update(status="error", error=f"{type(exc).__name__}: {exc}")
        return row
    if predictor is not None and reference is not None:
        checkpoint("phase 2", 0, 1, f"{row['label']}: prediction from the reconstruction")
        _phase2(row, image, recon, predictor, reference)
    return row


def _phase2(row: Row, image: np.ndarray, recon: np.ndarray, predictor: Predictor,
            reference: Mapping[str, Any]) -> None:
    if reference.get("error"):
        _add_note(row, f"phase 2 skipped: {reference['error']}")
        return
    _add_note(row, reference.get("caveat") and f"phase 2: {reference['caveat']}")
    try:
        t0 = time.perf_counter()
        pred = np.asarray(predictor(recon), dtype=np.float32)   # lossless rows too: predict_s is a real time
        row["predict_s"] = time.perf_counter() - t0
        gt, peak = reference.get("ground_truth"), reference["peak"]
        if gt is not None:
            row["p2_psnr"], row["p2_ssim"], row["p2_pearson_r"] = prediction_scores(gt, pred, peak)
            for k in ("p2_orig_psnr", "p2_orig_ssim", "p2_orig_pearson_r"):
                row[k] = reference[k]
        row["p2_ref_psnr"], row["p2_ref_ssim"], row["p2_ref_pearson_r"] = prediction_scores(
            reference["prediction"], pred, peak)
    except Exception as exc:  # phase 2 failing keeps the phase-1 numbers
        _add_note(row, f"phase 2 failed: {type(exc).__name__}: {exc}")


def _add_note(row: Row, note: Optional[str]) -> None:
    if note:
        row["note"] = f"{row['note']}; {note}" if row.get("note") else note


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
        arrays = _named_arrays(images)
        self.images = [(n, check_image(a)) for n, a in arrays]
        self.sources = {n: source_of(a) for n, a in arrays}
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


__all__ = ["FLOAT_KEYS", "ID_KEYS", "INT_KEYS", "PHASE1_KEYS", "PHASE2_KEYS", "ROW_KEYS", "TIMING_KEYS", "Plan",
           "Row", "empty_row", "expand_codecs", "image_reference", "method_name", "named_images", "run_row",
           "safe_reference", "source_of"]
