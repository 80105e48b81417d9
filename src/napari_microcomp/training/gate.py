"""The RD gate: may a freshly trained weight file replace the one shipped?

A file is measured with REAL streams (``codec.encode`` → container bytes → ``decode``) on centre crops
of the modality's evaluation split (:func:`napari_microcomp.datasets.codec2d_modality_split`, never
trained on). It passes when

* its RD curve is monotone: mean bpp and mean PSNR rise with quality over the qualities it serves;
* it beats the file it replaces: BD-rate (PSNR) of the new curve against the old one is < 0
  (or there is no old file).

The report also carries the per-image BD-rate against the classical anchor (JPEG 2000 for
transmitted light, JPEG XL for fluorescence, swept densely over its native parameter), which is what
the issue targets are stated in. :func:`recheck` re-measures one crop and compares with the numbers
a shipped file records in its metadata (``meta["gate"]``).

3D files are gated on the held-out stacks (``datasets.stacks3d_split("eval")``) by
``benchmarks/volumetric_rd.py --record JOB``, which stores :func:`volume_gate_meta`; their recheck crop is
a centre block of the stack.
"""
import math
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from .. import container, metrics
from ..bdrate import bd_psnr, bd_rate
from ..errors import MicrocompError

ANCHORS = {"transmitted": ("jpeg2k", "level", (24, 26, 28, 30, 32, 34, 36, 38, 40, 42, 44, 46, 48, 50, 53, 56)),
           "fluorescence": ("jpegxl", "distance", (25.0, 18.0, 14.0, 11.0, 9.0, 7.0, 5.5, 4.5, 3.5, 2.8, 2.2,
                                                   1.7, 1.3, 1.0, 0.7, 0.5))}


def centre_crop(a: np.ndarray, size: int) -> np.ndarray:
    h, w = a.shape[-2:]
    y0, x0 = max(0, (h - size) // 2), max(0, (w - size) // 2)
    return np.ascontiguousarray(a[..., y0:y0 + size, x0:x0 + size])


def eval_images(modality: str, crop: int = 512, max_images: Optional[int] = None,
                root=None) -> List[Tuple[str, np.ndarray]]:
    from ..datasets import codec2d_modality_split

    imgs = [(n, centre_crop(a, crop)) for n, a in codec2d_modality_split(modality, "eval", root)]
    imgs = [(n, a) for n, a in imgs if float(a.max()) > float(a.min())]
    return imgs[:max_images] if max_images else imgs


def measure(codec, img: np.ndarray, header_format: int = 0) -> Dict[str, float]:
    """bpp (whole stream), PSNR and SSIM of one image. ``header_format=1``: count the header as format 1
    stored it (plain JSON), to compare with numbers recorded before format 2."""
    from ..codecs import decode

    data = codec.encode(img)
    rec = decode(data)
    n = container.format1_size(data) if header_format == 1 else len(data)
    return {"bpp": metrics.bpp(img, n), "psnr": metrics.psnr(img, rec), "ssim": metrics.ssim(img, rec)}


def curves(images: Sequence[Tuple[str, np.ndarray]], make: Callable[[Any], Any],
           settings: Sequence, skip_refusals: bool = False) -> Dict[str, List[Dict[str, float]]]:
    """Per image: one point (bpp, psnr, ssim, setting) per setting, lossless/infinite points dropped.

    ``skip_refusals``: a setting the codec refuses on an image (CodecError) is no point, not a failure.
    """
    from ..errors import CodecError

    out: Dict[str, List[Dict[str, float]]] = {}
    for s in settings:
        codec = make(s)
        for name, img in images:
            try:
                r = measure(codec, img)
            except CodecError:
                if not skip_refusals:
                    raise
                continue
            if math.isfinite(r["psnr"]):
                out.setdefault(name, []).append({"setting": s, **r})
    return out


def mean_curve(per_image: Dict[str, List[Dict[str, float]]]) -> List[Dict[str, float]]:
    """Mean bpp/PSNR/SSIM per setting, over the settings every image has a point for."""
    settings = [p["setting"] for p in next(iter(per_image.values()))]
    pts = []
    for s in settings:
        rows = [p for v in per_image.values() for p in v if p["setting"] == s]
        if len(rows) == len(per_image):
            pts.append({"setting": s, **{k: float(np.mean([r[k] for r in rows])) for k in ("bpp", "psnr", "ssim")}})
    return pts


def _bd(anchor: List[Dict[str, float]], test: List[Dict[str, float]], fn=bd_rate) -> float:
    try:
        return float(fn([p["bpp"] for p in anchor], [p["psnr"] for p in anchor],
                             [p["bpp"] for p in test], [p["psnr"] for p in test]))
    except Exception:  # too few overlapping points
        return float("nan")


def learned_qualities(path) -> List[int]:
    from ..weights.load import load_weights

    lm = load_weights(path)
    q = lm.meta.get("quality")
    return list(range(1, 9)) if q is None else [int(q)]


def evaluate(paths: Sequence, arch: str, modality: str, crop: int = 512, max_images: Optional[int] = None,
             anchor: bool = True, root=None) -> Dict[str, Any]:
    """Measure the learned codec given by weight files ``paths`` (one VBR file, or one file per quality)."""
    from ..codecs import get_codec

    images = eval_images(modality, crop, max_images, root)
    by_q = {}
    for p in paths:
        for q in learned_qualities(p):
            by_q[q] = str(p)
    learned = curves(images, lambda q: get_codec(arch, quality=q, weights=by_q[q]), sorted(by_q))
    rep: Dict[str, Any] = {"arch": arch, "modality": modality, "crop": crop,
                           "images": [n for n, _ in images], "learned": learned,
                           "learned_mean": mean_curve(learned)}
    if anchor:
        cid, param, settings = ANCHORS[modality]
        anc = curves(images, lambda v: get_codec(cid, **{param: v}), settings, skip_refusals=True)
        rep["anchor"] = {"codec": cid, "mean": mean_curve(anc), "per_image": anc}
        per = {n: _bd(anc[n], learned[n]) for n in learned if n in anc}
        rep["bd_rate_vs_anchor"] = per
        finite = [v for v in per.values() if math.isfinite(v)]
        rep["bd_rate_vs_anchor_median"] = float(np.median(finite)) if finite else float("nan")
        rep["bd_rate_vs_anchor_mean_curve"] = _bd(rep["anchor"]["mean"], rep["learned_mean"])
        rep["bd_psnr_vs_anchor"] = {n: _bd(anc[n], learned[n], bd_psnr) for n in learned if n in anc}
    return rep


def monotone(curve: List[Dict[str, float]]) -> bool:
    b = [p["bpp"] for p in curve]
    s = [p["psnr"] for p in curve]
    return all(np.diff(b) > 0) and all(np.diff(s) > 0)


def _points(curve: List[Dict[str, float]]) -> str:
    return ", ".join(f"q{p['setting']} {p['bpp']:.3f}/{p['psnr']:.2f}" for p in curve)


def set_order_warning(levels: Dict[int, Dict[str, float]]) -> Optional[str]:
    """A fixed-rate set is one file per level: each promotion is gated alone, so a better file at one level
    can leave its neighbour above it behind. ``levels``: quality -> that file's mean point. None when in order."""
    curve = [dict(levels[q], setting=q) for q in sorted(levels)]
    if len(curve) < 2 or monotone(curve):
        return None
    return f"the shipped set is not monotone over its levels (bpp/PSNR: {_points(curve)}): train the lagging level"


def gate(new: Dict[str, Any], old: Optional[Dict[str, Any]]) -> Tuple[bool, str]:
    """Decide from two :func:`evaluate` reports (``old`` None: nothing shipped to beat)."""
    if not monotone(new["learned_mean"]):
        return False, f"RD curve not monotone (bpp/PSNR: {_points(new['learned_mean'])})"
    if old is None:
        return True, "monotone; nothing shipped to beat"
    d = _bd(old["learned_mean"], new["learned_mean"])
    if math.isnan(d) and "anchor" in new:   # the curves do not overlap: compare both against the same anchor
        per = [_bd(new["anchor"]["per_image"][n], old["learned"][n]) for n in old["learned"]
               if n in new["anchor"]["per_image"]]
        finite = [v for v in per if math.isfinite(v)]
        old_med = float(np.median(finite)) if finite else float("inf")
        new_med = new["bd_rate_vs_anchor_median"]
        verdict = f"median BD-rate vs {new['anchor']['codec']} {new_med:+.1f} % against the shipped file's " \
                  f"{old_med:+.1f} % ({len(finite)} of {len(per)} images overlap the anchor)"
        if new_med < old_med:
            return True, f"monotone; curves do not overlap the shipped file's; {verdict}"
        return False, f"does not beat the shipped file: {verdict}"
    if not d < 0:
        return False, f"does not beat the shipped file (BD-rate vs it {d:+.1f} %)"
    return True, f"monotone; BD-rate vs the shipped file {d:+.1f} %"


def delta_db(anchor: List[Dict[str, float]], point: Dict[str, float]) -> float:
    """PSNR of ``point`` minus the anchor's PSNR at the same bpp (log-rate interpolation)."""
    a = sorted(anchor, key=lambda p: p["bpp"])
    lr = np.log([p["bpp"] for p in a])
    if not lr[0] <= math.log(point["bpp"]) <= lr[-1]:
        return float("nan")
    return float(point["psnr"] - np.interp(math.log(point["bpp"]), lr, [p["psnr"] for p in a]))


def window_db(anchor: List[Dict[str, float]], curve: List[Dict[str, float]], lo: float = 0.1, hi: float = 0.5,
              n: int = 64) -> float:
    """Mean PSNR gap of ``curve`` to the anchor over ``lo``..``hi`` bpp, uniform in log-rate.

    Both curves are interpolated linearly in log-rate between their own points, over the part of the window
    both cover. Unlike a mean over the learned points, it does not depend on how many levels sample the
    window (one more level at the cheap end would otherwise pull the mean toward that end's gap).
    """
    c = sorted((p for p in curve if p["bpp"] > 0 and math.isfinite(p["psnr"])), key=lambda p: p["bpp"])
    a = sorted((p for p in anchor if p["bpp"] > 0 and math.isfinite(p["psnr"])), key=lambda p: p["bpp"])
    if len(c) < 2 or len(a) < 2:
        return float("nan")
    left = max(lo, c[0]["bpp"], a[0]["bpp"])
    right = min(hi, c[-1]["bpp"], a[-1]["bpp"])
    if not left < right:
        return float("nan")
    r = np.linspace(math.log(left), math.log(right), n)
    mine = np.interp(r, np.log([p["bpp"] for p in c]), [p["psnr"] for p in c])
    theirs = np.interp(r, np.log([p["bpp"] for p in a]), [p["psnr"] for p in a])
    return float(np.mean(mine - theirs))


def mean_delta_db(report: Dict[str, Any], anchor_report: Optional[Dict[str, Any]] = None) -> float:
    """Mean over images and qualities of :func:`delta_db` against the anchor."""
    anc = (anchor_report or report)["anchor"]["per_image"]
    d = [delta_db(anc[n], p) for n, pts in report["learned"].items() if n in anc for p in pts]
    d = [v for v in d if math.isfinite(v)]
    return float(np.mean(d)) if d else float("nan")


def gate_single(new: Dict[str, Any], old: Optional[Dict[str, Any]]) -> Tuple[bool, str]:
    """Gate for one fixed-rate file: its mean dB vs the anchor at equal bpp must beat the old file's."""
    dn = mean_delta_db(new)
    if not math.isfinite(dn):
        return False, "no point inside the anchor's rate range"
    if old is None:
        return True, f"{dn:+.2f} dB vs {new['anchor']['codec']}; nothing shipped to beat"
    do = mean_delta_db(old, new)
    if not dn > do:
        return False, f"{dn:+.2f} dB vs {new['anchor']['codec']}, not better than the shipped file's {do:+.2f} dB"
    return True, f"{dn:+.2f} dB vs {new['anchor']['codec']} (shipped file: {do:+.2f} dB)"


VOLUME_CHECK_CROP = (8, 128, 128)
VOLUME_CHECK_QUALITIES = (2, 5, 8)


def eval_volume(name: str, crop: Sequence[int], root=None) -> np.ndarray:
    """A centre block of the held-out stack ``name``."""
    from ..datasets import stacks3d_split

    vols = dict(stacks3d_split("eval", root))
    if name not in vols:
        raise MicrocompError(f"evaluation stack {name!r} not available")
    v = vols[name]
    return np.ascontiguousarray(v[tuple(slice(max(0, (s - c) // 2), max(0, (s - c) // 2) + c)
                                        for s, c in zip(v.shape, crop))])


def volume_gate_meta(path, stack: str, curve: List[Dict[str, float]], summary: Dict[str, Any],
                     root=None) -> Dict[str, Any]:
    """The gate record of a 3D file: its curve on the whole stack and check points on a centre block."""
    from ..codecs import get_codec
    from ..weights.load import load_weights

    lm = load_weights(path)
    vol = eval_volume(stack, VOLUME_CHECK_CROP, root)
    pts = {str(q): {k: v for k, v in measure(get_codec(lm.arch, quality=q, weights=str(path)), vol).items()
                    if k in ("bpp", "psnr")} for q in VOLUME_CHECK_QUALITIES}
    return {"modality": lm.meta.get("modality"), "stack": stack, "crop": list(VOLUME_CHECK_CROP),
            "check_image": stack, "check_points": pts, "eval_mean": curve, "anchor": "jpegxl (slice-wise)",
            **{k: v for k, v in summary.items() if k.startswith("bd_psnr")}}


def recheck(path, tolerance_db: float = 0.1, root=None) -> List[str]:
    """Re-measure a shipped file on the first crop its metadata names; return the mismatches."""
    from ..codecs import get_codec
    from ..weights.load import load_weights

    lm = load_weights(path)
    g = lm.meta.get("gate")
    if not g:
        raise MicrocompError(f"{path} records no gate measurement")
    if g.get("stack"):
        images = {g["stack"]: eval_volume(g["stack"], g["crop"], root)}
    else:
        images = dict(eval_images(g["modality"], int(g["crop"]), None, root))
    name = g["check_image"]
    if name not in images:
        raise MicrocompError(f"evaluation image {name!r} not available")
    bad = []
    for q_str, want in g["check_points"].items():
        got = measure(get_codec(lm.arch, quality=int(q_str), weights=str(path)), images[name],
                      header_format=int(g.get("format", 1)))
        # the header names the weight file by path and records coding parameters added since the gate ran
        # (e.g. ``grid``), so its length may differ by up to ~100 bytes; the PSNR check is the strict one: no
        # worse than recorded (coding added since may do better: the tile offsets of session 38, +0.28 dB here)
        slack = 0.005 * want["bpp"] + 8 * 128 / images[name].size
        if got["psnr"] < want["psnr"] - tolerance_db or abs(got["bpp"] - want["bpp"]) > slack:
            bad.append(f"q{q_str}: recorded {want['bpp']:.4f} bpp / {want['psnr']:.2f} dB, "
                       f"measured {got['bpp']:.4f} / {got['psnr']:.2f}")
    return bad


def gate_meta(report: Dict[str, Any]) -> Dict[str, Any]:
    """What a promoted file records about its gate run (plain JSON)."""
    first = report["images"][0]
    db = mean_delta_db(report) if "anchor" in report else float("nan")
    pts = {str(p["setting"]): {"bpp": p["bpp"], "psnr": p["psnr"]} for p in report["learned"][first]}
    return {"modality": report["modality"], "crop": report["crop"], "check_image": first, "check_points": pts,
            "format": container.FORMAT_VERSION,
            "eval_mean": report["learned_mean"],
            "bd_rate_vs_anchor_median": report.get("bd_rate_vs_anchor_median"),
            "bd_rate_vs_anchor_mean_curve": report.get("bd_rate_vs_anchor_mean_curve"),
            "anchor": (report.get("anchor") or {}).get("codec"),
            # the gate's own number, kept with the file: a workdir's log may not survive the machine
            "db_vs_anchor": db if math.isfinite(db) else None}
