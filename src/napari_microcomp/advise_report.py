"""The advisor's report: JSON and Markdown with the exact settings, and an RD plot with the tolerance."""
import datetime as _dt
import io
import json
import math
import shlex
from dataclasses import asdict
from pathlib import Path
from typing import Any, Dict, Optional

from .advise import TOLERANCES, Advice, AdviceRow
from .benchmark.export import markdown_table
from .io_write import atomic_write_bytes

COLUMNS = {"rank": ("#", 0), "codec": ("codec", 0), "setting": ("setting", 0), "met": ("meets", 0),
           "compression_ratio": ("CR", 2), "bpp": ("bpp", 4)}


def command_for(row: AdviceRow, source: str = "IMAGE") -> str:
    """The ``microcomp compress`` command that writes this row's stream."""
    cfg = dict(row.config)
    parts = ["microcomp", "compress", source, "--codec", str(cfg.pop("id", row.codec))]
    q, lossless = cfg.pop("quality", None), cfg.pop("lossless", False)
    if lossless:
        parts.append("--lossless")
    elif q is not None:
        parts += ["--quality", str(q)]
    for k, v in cfg.items():
        if k == "weights":
            parts += ["--weights", str(v)]
        elif v is not None:
            parts += ["--param", f"{k}={v}"]
    return " ".join(shlex.quote(p) for p in parts)


def _plain(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None if math.isnan(v) else ("inf" if v > 0 else "-inf")
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    return v


def to_dict(advice: Advice) -> Dict[str, Any]:
    from . import __version__

    rows = []
    for i, r in enumerate(advice.rows):
        d = asdict(r)
        d["rank"] = i + 1
        d["command"] = command_for(r)
        rows.append(d)
    w = advice.winner
    return _plain({"tool": f"napari-microcomp {__version__}", "created": _dt.datetime.now().isoformat(timespec="seconds"),
                   "tolerance": dict(advice.tolerance.items()), "tolerance_text": advice.tolerance.describe(),
                   "images": advice.images, "labelfree_model": advice.labelfree_model,
                   "summary": advice.summary(), "winner": None if w is None else {**asdict(w), "command": command_for(w)},
                   "lossless_only": advice.lossless_only, "rows": rows, "notes": advice.notes})


def markdown(advice: Advice) -> str:
    tol_keys = [k for k, _ in advice.tolerance.items()]
    cols = dict(COLUMNS)
    for k in ["psnr", *tol_keys]:
        if k != "bpp":
            cols[f"worst_{k}"] = (f"worst {TOLERANCES[k][0]}", 4 if k in ("ssim", "ms_ssim", "r_drop") else 2)
    cols.update({"encode_mb_s": ("enc MB/s", 1), "decode_mb_s": ("dec MB/s", 1), "trials": ("trials", 0),
                 "note": ("note", 0)})
    recs = []
    for i, r in enumerate(advice.rows):
        rec = {**asdict(r), "rank": i + 1, "met": "yes" if r.met else "no"}
        rec.update({f"worst_{k}": v for k, v in r.worst.items()})
        rec["trials"] = str(r.trials)
        recs.append(rec)
    imgs = ", ".join(f"{d['name']} ({'×'.join(map(str, d['shape']))} {d['dtype']})" for d in advice.images)
    out = ["# Compression advice", "", f"**Tolerance:** {advice.tolerance.describe()} — on every image "
           f"(a stack's worst slice counts).", "", f"**Images:** {imgs}", ""]
    if advice.labelfree_model:
        out += [f"**Label-free model:** {advice.labelfree_model}", ""]
    out += [f"**Answer:** {advice.summary()}", ""]
    if advice.winner is not None:
        out += ["Reproduce:", "", "```", command_for(advice.winner), "```", ""]
    out += [markdown_table(recs, cols), "CR = raw bytes / stream bytes over all images; bpp likewise. "
            "Each setting was re-measured on every image; rows that do not meet the tolerance show the "
            "closest setting tried."]
    out += [f"- {n}" for n in advice.notes]
    return "\n".join(out) + "\n"


def export_json(advice: Advice, path) -> Path:
    atomic_write_bytes(path, (json.dumps(to_dict(advice), indent=1) + "\n").encode())
    return Path(path)


def export_markdown(advice: Advice, path) -> Path:
    atomic_write_bytes(path, markdown(advice).encode())
    return Path(path)


def plot_metric(advice: Advice) -> str:
    """The metric the plot shows: the first quality tolerance, else PSNR."""
    for k, _ in advice.tolerance.items():
        if k in ("psnr", "ssim", "ms_ssim", "max_error", "r_drop"):
            return k
    return "psnr"


def figure(advice: Advice, metric: Optional[str] = None, size=(6.5, 4.5)):
    """Every trial of every codec (metric vs bpp; the worst image counts), the tolerance as a line and
    the winner starred. Returns a matplotlib Figure (no pyplot, safe off the GUI thread)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from .benchmark.plots import method_colors
    metric = metric or plot_metric(advice)
    fig = Figure(figsize=size, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    colors = method_colors((r.codec, r.codec) for r in advice.rows)   # by codec, not by rank
    for r in advice.rows:
        pts = sorted((p for p in r.points if p.get("complete") and _finite(p.get(metric)) and p["bpp"] > 0),
                     key=lambda p: p["bpp"])
        if pts:
            ax.plot([p["bpp"] for p in pts], [p[metric] for p in pts], "o-" if len(pts) > 1 else "o",
                    ms=3, lw=0.8, label=r.codec, color=colors[r.codec])
    tol = dict(advice.tolerance.items()).get(metric)
    if tol is not None:
        ax.axhline(tol, color="k", ls="--", lw=1, label=f"tolerance {TOLERANCES[metric][0]} "
                                                          f"{'≥' if TOLERANCES[metric][1] else '≤'} {tol:g}")
    w = advice.winner
    if w is not None and _finite(w.worst.get(metric)):
        ax.plot([w.bpp], [w.worst[metric]], "*", ms=14, color="gold", mec="k", label=f"best: {w.codec}")
    ax.set_xscale("log")
    ax.set_xlabel("bits per pixel")
    ax.set_ylabel(f"worst {TOLERANCES[metric][0]}")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    return fig


def export_plot(advice: Advice, path, metric: Optional[str] = None) -> Path:
    buf = io.BytesIO()
    figure(advice, metric).savefig(buf, format="png", dpi=120)
    atomic_write_bytes(path, buf.getvalue())
    return Path(path)


def _finite(v) -> bool:
    return isinstance(v, (int, float)) and math.isfinite(v)


__all__ = ["command_for", "export_json", "export_markdown", "export_plot", "figure", "markdown", "to_dict"]
