"""The one rate–distortion plot of benchmark rows: for the exported PNGs and the benchmark widget.

:func:`rd_figure` returns a matplotlib Figure (Agg, no pyplot: safe on a worker thread). ``panels=False``
draws every curve in one axes sized in pixels (the widget: legend right when there is room, else below);
``panels=True`` draws one axes per image (the exports).
"""
import math
from typing import Any, Dict, List, Sequence, Tuple

PLOT_METRICS = ("psnr", "ssim", "ms_ssim", "pearson_r", "p2_pearson_r", "p2_ssim", "p2_ref_pearson_r")
METRIC_LABELS = {"psnr": "PSNR (dB)", "ssim": "SSIM", "ms_ssim": "MS-SSIM", "pearson_r": "Pearson r",
                 "p2_pearson_r": "prediction: Pearson r vs ground truth",
                 "p2_ssim": "prediction: SSIM vs ground truth",
                 "p2_ref_pearson_r": "prediction: Pearson r vs prediction from original"}
EXPORTED = ("psnr", "ssim", "p2_pearson_r")   # the PNGs an export writes (when the rows have values)


def finite(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def plot_metrics(rows: Sequence[Dict[str, Any]]) -> List[str]:
    """The plottable metrics that have at least one finite value in ``rows`` (in PLOT_METRICS order)."""
    ok = [r for r in rows if r.get("status") == "ok" and finite(r.get("bpp"))]
    return [m for m in PLOT_METRICS if any(finite(r.get(m)) for r in ok)]


def _curves(rows, metric: str, per_image: bool) -> Tuple[Dict[str, List], Dict[str, str]]:
    """curve name -> sorted (bpp, value) points, and -> line style (dashed for learned codecs)."""
    curves: Dict[str, List] = {}
    styles: Dict[str, str] = {}
    for row in rows:
        x, y = row.get("bpp"), row.get(metric)
        if row.get("status") == "ok" and finite(x) and finite(y) and x > 0:
            key = f"{row['method']} ({row['image']})" if per_image else row["method"]
            curves.setdefault(key, []).append((x, y))
            styles[key] = "--" if row.get("family") in ("learned", "volumetric") else "-"
    return {k: sorted(v) for k, v in curves.items()}, styles


def method_colors(methods) -> Dict[str, Any]:
    """(method, codec) pairs -> {method: colour}: 20 distinct colours given in the codec registry's order, so that a
    method keeps its colour in every panel of a figure whatever curves each panel has (and not its rank)."""
    from matplotlib import colormaps

    from ..codecs import available_codecs
    order = {n: i for i, n in enumerate(available_codecs(include_unavailable=True))}
    palette = list(colormaps["tab10"].colors) + list(colormaps["tab20"].colors[1::2])   # then the light tints
    ranked = sorted(set(methods), key=lambda mc: (order.get(mc[1], len(order)), str(mc[0])))
    return {m: palette[i % len(palette)] for i, (m, _) in enumerate(ranked)}


def _draw(ax, rows, metric: str, per_image: bool, colors=None) -> bool:
    from matplotlib import colormaps
    from matplotlib.ticker import LogLocator, NullFormatter, ScalarFormatter

    curves, styles = _curves(rows, metric, per_image)
    ax.set_prop_cycle(color=colormaps["tab20"].colors)   # per image: up to 20 curves without repeating a colour
    for key, pts in curves.items():
        extra = {"color": colors[key]} if colors and key in colors else {}
        ax.plot(*zip(*pts), styles[key], marker="o", markersize=3, label=key, **extra)
    if metric.startswith("p2_") and curves:
        ref = [r.get(metric.replace("p2_", "p2_orig_")) for r in rows if r.get("status") == "ok"]
        ref = [v for v in ref if finite(v)]
        if ref and not per_image:
            ax.axhline(ref[0], color="k", lw=0.8, ls=":", label="from uncompressed input")
    ax.set_xlabel("bits per pixel")
    ax.set_ylabel(METRIC_LABELS.get(metric, metric))
    ax.grid(alpha=0.3, which="both")
    ax.tick_params(axis="both", labelsize=8)
    if curves:
        ax.set_xscale("log")   # bpp spans decades (0.01 .. 16)
        ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0), numticks=8))
        formatter = ScalarFormatter()
        formatter.set_scientific(False)
        ax.xaxis.set_major_formatter(formatter)
        ax.xaxis.set_minor_formatter(NullFormatter())   # minor labels overlapped the major ones
    else:
        ax.text(0.5, 0.5, f"no {METRIC_LABELS.get(metric, metric)} values" + (" yet" if not rows else ""),
                ha="center", va="center", transform=ax.transAxes, fontsize=9, color="0.4")
    return bool(curves)


def rd_figure(rows: Sequence[Dict[str, Any]], metric: str, per_image: bool = False, size=(400, 300),
              dpi: int = 100, panels: bool = False):
    """``metric`` vs bits per pixel: one curve per method (and image when ``per_image``), or one panel per
    image (``panels``). ``size`` in pixels at ``dpi`` (per panel with ``panels``)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    rows = list(rows)
    colors = method_colors((r["method"], r.get("codec")) for r in rows if r.get("method")) if not per_image else None
    if panels:
        images = list(dict.fromkeys(r["image"] for r in rows if _curves([r], metric, False)[0]))  # with values
        ncols = max(1, min(2, len(images)))
        nrows = max(1, -(-len(images) // ncols))
        fig = Figure(figsize=(size[0] * ncols / dpi, size[1] * nrows / dpi), dpi=dpi, layout="constrained")
        FigureCanvasAgg(fig)
        for k, image in enumerate(images or [""]):
            ax = fig.add_subplot(nrows, ncols, k + 1)
            if _draw(ax, [r for r in rows if r.get("image") == image], metric, False, colors):
                ax.legend(fontsize=6, ncol=2)
            ax.set_title(str(image))
        return fig
    fig = Figure(figsize=(size[0] / dpi, size[1] / dpi), dpi=dpi)
    FigureCanvasAgg(fig)
    n_curves = len(_curves(rows, metric, per_image)[0])
    w, h = size   # margins in pixels: tick labels, axis titles and (when wide) the legend
    legend_right = n_curves > 0 and w >= 480
    right = (w - 170) / w if legend_right else 1 - 14 / w
    legend_rows = (n_curves + 1) // 2 if n_curves and not legend_right else 0
    bottom = (50 + (14 * legend_rows + 10 if legend_rows else 0)) / h
    fig.subplots_adjust(left=62 / w, right=right, bottom=min(bottom, 0.6), top=1 - 12 / h)
    ax = fig.add_subplot()
    if _draw(ax, rows, metric, per_image, colors):
        if legend_right:
            ax.legend(fontsize="x-small", loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0,
                      frameon=False)
        else:
            fig.legend(fontsize="x-small", loc="lower center", bbox_to_anchor=(0.5, 2 / h), ncol=2,
                       frameon=False)
    fig.canvas.draw()
    return fig


__all__ = ["EXPORTED", "METRIC_LABELS", "PLOT_METRICS", "finite", "plot_metrics", "rd_figure"]
