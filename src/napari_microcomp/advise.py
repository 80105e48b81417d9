""""How hard can I compress?": the highest compression each codec reaches within a tolerance.

:func:`iter_advise` searches every codec's native parameter continuously (the rate-control search of
:mod:`napari_microcomp.ratecontrol`: the quality levels first, then bisection) for the setting with
the highest compression ratio that meets *every* tolerance on *every* image; for a z-stack the worst
slice counts. Lossless codecs are measured once, so an impossible tolerance still gets an answer
("lossless only"). The result is a ranked :class:`Advice`; :mod:`napari_microcomp.advise_report`
writes it as JSON/Markdown.
"""
import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, Generator, List, Optional, Sequence, Tuple

import numpy as np

from . import metrics
from ._progress import Progress, result_of
from ._validate import check_image, label_like
from .codecs import available_codecs, codec_class, codec_from_config, decode, is_wrapper
from .errors import InputError, MicrocompError
from .ratecontrol import axis_for, image_span, iter_search

# name -> (label, is a floor (True) or a ceiling (False), valid range)
TOLERANCES: Dict[str, Tuple[str, bool, Tuple[float, float]]] = {
    "psnr": ("PSNR (dB)", True, (0.0, 200.0)),
    "ssim": ("SSIM", True, (0.0, 1.0)),
    "ms_ssim": ("MS-SSIM", True, (0.0, 1.0)),
    "max_error": ("max |error|", False, (0.0, math.inf)),
    "r_drop": ("label-free r drop", False, (0.0, 2.0)),
    "bpp": ("bits per pixel", False, (0.001, 64.0)),   # 0 bits: a search that cannot succeed
}
MIN_SIDE = {"ssim": 11, "ms_ssim": 161}   # below this, the metric is undefined (NaN)


@dataclass
class Tolerance:
    """What the user accepts. Floors: ``psnr``, ``ssim``, ``ms_ssim``; ceilings: ``max_error`` (data
    units), ``r_drop`` (1 − Pearson r between the label-free prediction from the reconstruction and
    from the original; needs a model), ``bpp``."""

    psnr: Optional[float] = None
    ssim: Optional[float] = None
    ms_ssim: Optional[float] = None
    max_error: Optional[float] = None
    r_drop: Optional[float] = None
    bpp: Optional[float] = None

    def __post_init__(self):
        for k, v in asdict(self).items():
            if v is None:
                continue
            lo, hi = TOLERANCES[k][2]
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not (lo <= float(v) <= hi) \
                    or not math.isfinite(float(v)):
                raise InputError(f"tolerance {k} must be a number in [{lo}, {hi}], got {v!r}")
        if not self.items():
            raise InputError("give at least one tolerance (psnr, ssim, ms_ssim, max_error, r_drop or bpp)")

    def items(self) -> List[Tuple[str, float]]:
        return [(k, float(v)) for k, v in asdict(self).items() if v is not None]

    def met(self, worst: Dict[str, float]) -> bool:
        for k, v in self.items():
            got = worst.get(k, float("nan"))
            if not math.isfinite(got) and not (k in ("psnr",) and got == math.inf):
                return False
            if (got < v) if TOLERANCES[k][1] else (got > v):
                return False
        return True

    def describe(self) -> str:
        return ", ".join(f"{TOLERANCES[k][0]} {'≥' if TOLERANCES[k][1] else '≤'} {v:g}" for k, v in self.items())


@dataclass
class AdviceRow:
    """The best setting found for one codec (or the closest miss)."""

    codec: str
    family: str
    config: Dict[str, Any]
    setting: str                       # human form, e.g. "distance=3.21"
    met: bool
    compression_ratio: float
    bpp: float
    worst: Dict[str, float]            # worst value over the images of every measured metric
    encode_mb_s: float = float("nan")
    decode_mb_s: float = float("nan")
    trials: int = 0
    seconds: float = 0.0
    note: str = ""
    points: List[Dict[str, Any]] = field(default_factory=list)   # every trial: setting, bpp, worst metrics


@dataclass
class Advice:
    tolerance: Tolerance
    images: List[Dict[str, Any]]
    rows: List[AdviceRow]              # met first, highest compression ratio first
    labelfree_model: Optional[str] = None
    notes: List[str] = field(default_factory=list)

    @property
    def winner(self) -> Optional[AdviceRow]:
        met = [r for r in self.rows if r.met]
        return met[0] if met else None

    @property
    def lossless_only(self) -> bool:
        """Only exact (lossless) reconstructions meet the tolerance."""
        met = [r for r in self.rows if r.met]
        return bool(met) and all(_is_lossless(r) or r.worst.get("max_error") == 0 for r in met)

    def summary(self) -> str:
        w = self.winner
        if w is None:
            return f"nothing meets {self.tolerance.describe()}, not even lossless coding (the bpp ceiling?)"
        head = "lossless only: " if self.lossless_only else ("best (lossless): " if _is_lossless(w) else "best: ")
        return f"{head}{w.codec} {w.setting}, CR {w.compression_ratio:.1f} ({w.bpp:.3f} bpp)"

    def winner_codec(self):
        if self.winner is None:
            raise MicrocompError(self.summary())
        return codec_from_config(self.winner.config)


def _is_lossless(row: AdviceRow) -> bool:
    return row.family == "lossless" or bool(row.config.get("lossless"))


def default_codecs(learned: bool = False) -> List[str]:
    """Every available whole-image codec (classical + lossless; learned ones only when asked)."""
    fams = ["classical", "lossless"] + (["learned"] if learned else [])
    return [n for f in fams for n in available_codecs(f) if not is_wrapper(n)]


def _slices(a: np.ndarray) -> List[np.ndarray]:
    return list(a) if a.ndim == 3 else [a]


def image_metrics(orig: np.ndarray, rec: np.ndarray, nbytes: int, needed: Sequence[str],
                   model=None, pred_orig=None) -> Dict[str, float]:
    """PSNR, max error and bpp always; the others when a tolerance needs them. Stacks: worst slice."""
    rng = metrics.data_range(orig)
    diff = np.abs(orig.astype(np.float64) - rec.astype(np.float64))
    out = {"max_error": float(diff.max()), "bpp": metrics.bpp(orig, nbytes),
           "psnr": min(metrics.psnr(a, b, rng) for a, b in zip(_slices(orig), _slices(rec)))}
    if "ssim" in needed:
        out["ssim"] = min(metrics.ssim(a, b, rng) for a, b in zip(_slices(orig), _slices(rec)))
    if "ms_ssim" in needed:
        out["ms_ssim"] = min(metrics.ms_ssim(a, b, rng) for a, b in zip(_slices(orig), _slices(rec)))
    if "r_drop" in needed:
        out["r_drop"] = 1.0 - metrics.pearson(pred_orig, model.predict(rec))
    return out


def _worse(k: str, a: float, b: float) -> float:
    floor = TOLERANCES[k][1]
    if math.isnan(a) or math.isnan(b):
        return float("nan")
    return min(a, b) if floor else max(a, b)


class _Probe:
    """Encode+decode every image at one setting; stop at the first image that breaks a tolerance."""

    def __init__(self, name, images, tol, model, preds, raw_bytes):
        self.name, self.images, self.tol, self.model, self.preds = name, images, tol, model, preds
        self.raw_bytes = raw_bytes   # the caller's arrays': float16 is coded as float32, int32 as uint16
        self.needed = [k for k, _ in tol.items()]
        self.order = list(range(len(images)))   # the last failing image is tried first next time
        self.points: List[Dict[str, Any]] = []

    def __call__(self, kw):
        ok, res = self._run(kw)
        self.points.append({"setting": _setting(res["codec"]), "met": ok, "complete": res["complete"],
                            "compression_ratio": res["raw"] / res["stream"], **res["worst"],
                            "bpp": 8.0 * res["stream"] / res["pixels"]})
        return ok, res

    def _run(self, kw):
        cls = codec_class(self.name)
        codec = cls(**kw)
        worst: Dict[str, float] = {}
        raw = stream = pixels = 0
        enc_s = dec_s = 0.0
        for i in list(self.order):
            a = self.images[i]
            t0 = time.perf_counter()
            data = codec.encode(a)
            t1 = time.perf_counter()
            rec = decode(data)
            t2 = time.perf_counter()
            enc_s, dec_s = enc_s + t1 - t0, dec_s + t2 - t1
            raw, stream, pixels = raw + self.raw_bytes[i], stream + len(data), pixels + a.size
            m = image_metrics(a, rec, len(data), self.needed, self.model, self.preds[i] if self.preds else None)
            worst = {k: _worse(k, worst[k], v) if k in worst else v for k, v in m.items()}
            if not self.tol.met(m):
                self.order.remove(i)
                self.order.insert(0, i)
                return False, {"codec": codec, "worst": worst, "raw": raw, "stream": stream, "pixels": pixels,
                              "complete": False}
        return True, {"codec": codec, "worst": worst, "raw": raw, "stream": stream, "pixels": pixels, "complete": True,
                      "enc_s": enc_s, "dec_s": dec_s}


def _setting(codec) -> str:
    if codec.lossless:
        return "lossless"
    if codec.native_param and codec.native_param in codec.params:
        return f"{codec.native_param}={codec.params[codec.native_param]:g}"
    return f"q{codec.quality}"


def _coarsest(axis, codec) -> str:
    """A note when the answer is the axis's lowest-quality end: the tolerance is not what stopped there."""
    if axis is None or codec.lossless:
        return ""
    if axis.discrete:
        at_end, what = codec.quality == axis.levels[0], f"its lowest level (q{codec.quality})"
    else:
        v = codec.params.get(axis.param)
        at_end = v is not None and axis.t_of(float(v)) < 1e-3
        cap = getattr(axis.cls, "native_max", None)
        limit = "setting it allows" if at_end and cap is not None and math.isclose(v, cap) else "setting searched"
        what = f"the coarsest {limit} ({axis.param}={v:g})" if at_end else ""
    return f"at {what}: the tolerance would allow more loss" if at_end else ""


def _row(name: str, res: Optional[Dict[str, Any]], met: bool, trials: int, seconds: float, note: str = "",
         points=()):
    fam = codec_class(name).family
    if res is None:
        return AdviceRow(name, fam, {"id": name}, "-", False, float("nan"), float("nan"), {}, trials=trials,
                         seconds=seconds, note=note or "refused every setting tried")
    mb = res["raw"] / 1e6
    return AdviceRow(name, fam, res["codec"].get_config(), _setting(res["codec"]), met,
                     res["raw"] / res["stream"], 8.0 * res["stream"] / res["pixels"],
                     res["worst"], mb / res["enc_s"] if res.get("enc_s") else float("nan"),
                     mb / res["dec_s"] if res.get("dec_s") else float("nan"), trials, seconds, note, list(points))


def iter_advise(images: Sequence, tolerance: Tolerance, codecs: Optional[Sequence[str]] = None,
                labelfree_model=None, max_trials: int = 10, names: Optional[Sequence[str]] = None
                ) -> Generator[Progress, None, Advice]:
    """Progress generator; returns the ranked :class:`Advice` (see the module docstring).

    ``images``: 2D arrays or (Z, Y, X) stacks; ``codecs``: names (default :func:`default_codecs`);
    ``labelfree_model``: a loaded label-free model (``napari_microcomp.labelfree.load_model``), needed by
    an ``r_drop`` tolerance.
    """
    images = list(images)
    arrays = [check_image(a) for a in images]
    sources = [(getattr(a, "dtype", c.dtype), int(getattr(a, "nbytes", c.nbytes))) for a, c in zip(images, arrays)]
    if not arrays:
        raise InputError("give at least one image")
    names = list(names) if names else [f"image {i + 1}" for i in range(len(arrays))]
    for k, side in MIN_SIDE.items():
        if any(k == t for t, _ in tolerance.items()):
            small = [n for n, a in zip(names, arrays) if min(a.shape[-2:]) < side]
            if small:
                raise InputError(f"{TOLERANCES[k][0]} is undefined below {side} px; too small: {', '.join(small)}")
    codecs = list(codecs) if codecs else default_codecs()
    model, preds, notes = None, None, []
    for n, a in zip(names, arrays):
        k = label_like(a)
        if k is not None and tolerance.max_error != 0:
            notes.append(f"{n} looks like a label image or a mask ({k} values, constant within objects): a lossy "
                         "setting within the tolerance can still change values at object borders (labels, areas, "
                         "counts); --max-error 0 keeps every value")
    if tolerance.r_drop is not None:
        if labelfree_model is None or not callable(getattr(labelfree_model, "predict", None)):
            raise InputError("an r_drop tolerance needs a loaded label-free model (--labelfree MODEL)")
        model = labelfree_model
        preds = []
        for i, a in enumerate(arrays):
            yield Progress("advise", 0, len(codecs), f"label-free prediction of {names[i]}")
            preds.append(model.predict(a))
    rows: List[AdviceRow] = []
    for ci, name in enumerate(codecs):
        cls = codec_class(name)   # unknown names fail here, before any work
        yield Progress("advise", ci, len(codecs), f"{name}")
        t0 = time.perf_counter()
        probe = _Probe(name, arrays, tolerance, model, preds, [b for _, b in sources])

        def sized(res):
            return res["stream"] if res else 0
        try:
            axis = None
            if cls.lossless_only:
                ok, res = probe({"lossless": True})
                best, last, trials = (res if ok else None), res, 1
            else:
                axis = axis_for(name, arrays)
                gen = iter_search(axis, probe, "lowest", max_trials=max_trials, span=image_span(arrays),
                                  size=sized, label=name)
                while True:
                    try:
                        ev = next(gen)
                    except StopIteration as stop:
                        best, last, trials = stop.value
                        break
                    yield Progress("advise", ci, len(codecs), f"{name}: trial {ev.done}/{ev.total}")
        except MicrocompError as exc:
            rows.append(_row(name, None, False, 0, time.perf_counter() - t0, note=str(exc)))
            continue
        res = best or last
        note = _coarsest(axis, best["codec"]) if best else (
            "tolerance not reached at the best setting tried" if last else "")
        rows.append(_row(name, res, best is not None, trials, time.perf_counter() - t0, note, probe.points))
    rows.sort(key=lambda r: (not r.met, -(r.compression_ratio if math.isfinite(r.compression_ratio) else 0)))
    yield Progress("advise", len(codecs), len(codecs), "done")
    info = [{"name": n, "shape": list(a.shape), "dtype": np.dtype(dt).name}
            for n, a, (dt, _) in zip(names, arrays, sources)]
    src = None if model is None else str(getattr(model, "meta", {}).get("source") or model)
    return Advice(tolerance, info, rows, src, notes)


def advise(images: Sequence, tolerance: Tolerance, codecs: Optional[Sequence[str]] = None, **kwargs) -> Advice:
    """:func:`iter_advise` run to the end."""
    return result_of(iter_advise(images, tolerance, codecs, **kwargs))


__all__ = ["Advice", "AdviceRow", "TOLERANCES", "Tolerance", "advise", "default_codecs", "image_metrics", "iter_advise"]
