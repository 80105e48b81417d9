"""The work behind the dock widgets, headless, so it can run in a separate worker process.

Each job takes and returns picklable values (arrays, names, configs, results) and is either a
plain function or a progress generator (:mod:`napari_microcomp._progress`). The widgets start them
through :mod:`napari_microcomp._jobhost`, which runs them outside napari's process, so neither
numpy code holding the GIL nor a garbage collection over torch's objects can freeze the viewer.
"""
from typing import Optional

import numpy as np

from .errors import InputError


def compress_with_crc(image, codec, **kwargs):
    """``api.compress_array`` plus the CRC32 of the reconstruction."""
    from .api import compress_array
    from .container import array_crc32

    res = compress_array(image, codec, **kwargs)
    return res, array_crc32(res.reconstruction)


def compress(data, codec: str, quality: Optional[int], target: Optional[str], params: Optional[dict] = None):
    """(CompressResult, crc, |error| map) of one layer's data."""
    original = np.asarray(data)
    res, crc = compress_with_crc(original, codec, quality=quality, target=target, **(params or {}))
    error = np.abs(res.reconstruction.astype(np.float32) - original.astype(np.float32))
    return res, crc, error


def _plane(data, z: Optional[int], zstack: bool) -> np.ndarray:
    a = np.asarray(data)
    return a[z] if (a.ndim == 3 and not zstack and z is not None) else a


def predict(model_name: str, image, target, z, recon_data, codec: Optional[str], quality: int, tta: bool = False):
    """(scores, arrays, (CompressResult, crc) or None, z used or None); yields progress.

    ``tta``: average the 8 rotations/flips of each input (8x the time; smoother, usually better r)."""
    from .labelfree import iter_compare, load_model
    from .labelfree.model import input_caveat

    model = load_model(model_name)
    img = _plane(image, z, model.zstack)
    z = z if img.ndim < np.ndim(image) else None
    compression = None
    if recon_data is None:
        compression = compress_with_crc(img, codec, quality=quality)
        rec = compression[0].reconstruction
    else:
        rec = _plane(recon_data, z, model.zstack)
    row = yield from iter_compare(model, img, None if target is None else np.asarray(target), reconstruction=rec,
                                  return_arrays=True, tta=tta)   # without ground truth: rec. vs original only
    arrays = row.pop("arrays")
    caveat = input_caveat(img)
    if caveat:
        row["caveat"] = caveat
    arrays["limits"] = tuple(float(v) for v in np.percentile(arrays["original"], [0.5, 99.5]))
    return row, arrays, compression, z


def benchmark_inputs(layers, gt, predictor_name: str):
    """(images dict, ground-truth dict, predictor) for the engine.

    ``layers``: (name, data, z) with z the slice to take from 3D data, or None for all of it.
    """
    from .benchmark import ModelPredictor

    images = {}
    for name, data, z in layers:
        if z is not None and data.ndim == 3:
            images[f"{name} z{z}"] = np.asarray(data[z])
        else:
            images[name] = np.asarray(data)
    predictor, truth = None, None
    if predictor_name:
        predictor = ModelPredictor(predictor_name)
        predictor.check()
        if gt is not None:
            g = np.asarray(gt)
            truth = {n: g for n, a in images.items() if a.shape[-2:] == g.shape[-2:]}
            if not truth:
                raise InputError(f"the ground truth's shape {g.shape} matches no selected image in (Y, X)")
    return images, truth, predictor


def benchmark(layers, gt, predictor_name, codecs, qualities):
    """Yields ``{"images": ...}`` first, then the engine's progress; returns its rows."""
    from .benchmark import iter_benchmark

    images, truth, predictor = benchmark_inputs(layers, gt, predictor_name)
    yield {"images": images}
    return (yield from iter_benchmark(images, codecs, qualities=qualities, predictor=predictor,
                                      ground_truth=truth))


def reconstruct(image, config):
    """(CompressResult, crc) of ``image`` coded with a result row's codec config."""
    from .codecs import codec_from_config

    return compress_with_crc(image, codec_from_config(config))


def advise(arrays, tol, codecs, model, max_trials, names):
    from .advise import iter_advise

    if model is not None:
        from .labelfree import load_model

        model = load_model(model)
    return (yield from iter_advise(arrays, tol, codecs, labelfree_model=model, max_trials=max_trials, names=names))


def apply(config, arrays):
    """[(stream, decoded array)] of every array coded with ``config``."""
    from .codecs import codec_from_config, decode

    codec = codec_from_config(config)
    out = []
    for a in arrays:
        data = codec.encode(a)
        out.append((data, decode(data)))
    return out


def rd_image(rows, metric: str, per_image: bool, size):
    """The RD plot as RGBA pixels (H, W, 4) and its curve labels: matplotlib's thousands of objects per
    draw are made (and collected) outside napari's process."""
    from .benchmark.plots import rd_figure

    fig = rd_figure(rows, metric, per_image, size=size)
    labels = [line.get_label() for ax in fig.axes for line in ax.get_lines()]
    return np.asarray(fig.canvas.buffer_rgba()).copy(), labels
