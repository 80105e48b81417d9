"""The benchmark's phase-2 metrics: does compression change the predicted fluorescence?

For one phase image and its ground-truth fluorescence, predict from the original and from a
codec's reconstruction and score both against the ground truth (SSIM, PSNR, Pearson r), plus
the reconstruction-based prediction against the original-based one.

How scores are computed: predictions are in normalized units (the model's target scheme, per-image
1st/99th percentiles); the ground truth is normalized with the same scheme, per image. PSNR and
SSIM use the data range (max - min) of that normalized ground truth, the same for every codec
(``metrics.data_range(mode="image")``); Pearson r is scale-free. No per-image z-scoring.
"""
from typing import Any, Dict, Generator, Optional, Tuple

import numpy as np

from .. import metrics
from .._progress import Progress, result_of
from ..errors import InputError


def prediction_scores(reference: np.ndarray, prediction: np.ndarray, peak: float) -> Tuple[float, float, float]:
    """(PSNR, SSIM, Pearson r) of ``prediction`` against ``reference`` with one fixed ``peak``: the phase-2
    scorer of the benchmark, :func:`compare` and the label-free widget."""
    ref = np.asarray(reference, dtype=np.float32)
    pred = np.asarray(prediction, dtype=np.float32)
    return metrics.psnr(ref, pred, peak), metrics.ssim(ref, pred, peak), metrics.pearson(ref, pred)


def _scores(reference: np.ndarray, prediction: np.ndarray, suffix: str, data_range: float) -> Dict[str, float]:
    psnr, ssim, r = prediction_scores(reference, prediction, data_range)
    return {f"ssim_{suffix}": ssim, f"psnr_{suffix}": psnr, f"pearson_{suffix}": r}


def iter_compare(model, image, target, codec=None, reconstruction=None,
                 prediction_original: Optional[np.ndarray] = None, return_arrays: bool = False,
                 **predict_kwargs: Any) -> Generator[Progress, None, Dict[str, Any]]:
    """Generator form of :func:`compare` (yields the tiled predictions' progress).

    ``target=None``: no ground truth; only the reconstruction-vs-original scores, with the range of the
    prediction from the original as the peak."""
    from .zoo import load_model

    if isinstance(model, str) or hasattr(model, "__fspath__"):
        model = load_model(model)
    if codec is not None and reconstruction is not None:
        raise InputError("give either codec or reconstruction, not both")
    gt = None if target is None else model.normalize_target(target)
    if gt is not None and gt.shape != np.asarray(image).shape[-2:]:
        raise InputError(f"target {gt.shape} and image {np.asarray(image).shape} differ in (Y, X)")
    if prediction_original is None:
        prediction_original = yield from model.iter_predict(image, **predict_kwargs)
    rng = metrics.data_range(prediction_original if gt is None else gt, "image")
    row: Dict[str, Any] = {"model": model.meta.get("source", model.meta.get("kind")), "data_range": rng}
    arrays = {"original": prediction_original}
    if gt is not None:
        arrays["target"] = gt
        row.update(_scores(gt, prediction_original, "orig", rng))
    if codec is not None:
        yield Progress("compress", 0, 1, codec.label)
        stream = codec.encode(image)
        reconstruction = codec.decode(stream)
        row.update(codec=codec.get_config(), compressed_bytes=len(stream),
                   compression_ratio=metrics.compression_ratio(image, len(stream)),
                   bpp=metrics.bpp(image, len(stream)))
        yield Progress("compress", 1, 1, codec.label)
    if reconstruction is not None:
        rec = np.asarray(reconstruction)
        if rec.shape != np.asarray(image).shape:
            raise InputError(f"reconstruction {rec.shape} and image {np.asarray(image).shape} differ")
        pred_rec = yield from model.iter_predict(rec, **predict_kwargs)
        if gt is not None:
            row.update(_scores(gt, pred_rec, "rec", rng))
        # Same data range as the ground-truth scores, so the three columns are comparable.
        row.update(_scores(prediction_original, pred_rec, "rec_vs_orig", rng))
        arrays["reconstruction"] = pred_rec
    if return_arrays:
        row["arrays"] = arrays
    return row


def compare(model, image, target, codec=None, reconstruction=None, **kwargs: Any) -> Dict[str, Any]:
    """Phase-2 metrics of label-free prediction from original vs compressed input.

    Parameters
    ----------
    model : a LabelFreeModel, or a name/path for :func:`load_model`.
    image : the transmitted-light input ((Y, X), or (Z, Y, X) for a z-stack model).
    target : the ground-truth fluorescence (Y, X), raw units (normalized here like in training).
    codec : optional codec (``codecs.get_codec(...)``); the image is encoded and decoded once.
    reconstruction : optional already-decoded image instead of ``codec``.
    prediction_original : optional cached prediction from ``image`` (skip recomputing it per codec).
    return_arrays : add ``row["arrays"]`` with the normalized target and the predictions.

    Returns
    -------
    dict with ``ssim_orig, psnr_orig, pearson_orig`` (prediction from the original vs ground truth),
    ``*_rec`` (from the reconstruction vs ground truth), ``*_rec_vs_orig`` (the two predictions against
    each other), ``data_range``, and the codec's config and sizes when a codec was given.
    """
    return result_of(iter_compare(model, image, target, codec=codec, reconstruction=reconstruction, **kwargs))
