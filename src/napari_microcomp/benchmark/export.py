"""Benchmark exports: CSV, JSON, Markdown, rate–distortion plots (PNG), BD-rate and CR summaries.

Everything takes a plain list of rows (``iter_benchmark``'s result, or rows loaded back with
:func:`load_csv` / :func:`load_json`), so the napari widget and the CLI share it. Files are
written atomically. Plots use matplotlib's Agg canvas directly (no pyplot, no global backend
switch, so this is safe inside napari).

Encoding of special values: CSV writes NaN as ``nan``, infinity as ``inf`` (PSNR of a lossless
row), None as an empty cell, ``config``/``shape`` as JSON. JSON is standard JSON: NaN becomes
``null`` and infinities the strings ``"inf"``/``"-inf"``. Both loaders restore the row types.
"""
import csv
import io
import json
import math
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence

import numpy as np

from ..bdrate import bd_quality, bd_rate
from ..io_write import atomic_write_bytes
from .rows import FLOAT_KEYS, INT_KEYS, ROW_KEYS, Row

JSON_FORMAT = "napari-microcomp-benchmark/1"
JSON_KEYS = ("config", "shape")
SSIM_THRESHOLD = 0.94
DEFAULT_ANCHOR = "jpeg2k"


# -- plain values ---------------------------------------------------------------------------------
def _plain(v: Any) -> Any:
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, Mapping):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    return v


def _columns(rows: Sequence[Row]) -> List[str]:
    extra = sorted({k for r in rows for k in r} - set(ROW_KEYS))
    return list(ROW_KEYS) + extra


def _is_nan(v: Any) -> bool:
    return isinstance(v, float) and math.isnan(v)


# -- CSV ------------------------------------------------------------------------------------------
def _csv_cell(key: str, v: Any) -> str:
    v = _plain(v)
    if v is None:
        return ""
    if key in JSON_KEYS or isinstance(v, (dict, list)):
        return json.dumps(v, sort_keys=True)
    if isinstance(v, float):
        return repr(v)
    return str(v)


def export_csv(rows: Sequence[Row], path) -> Path:
    """Write rows as CSV (one column per row key); return the path."""
    buf = io.StringIO()
    cols = _columns(rows)
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(cols)
    for r in rows:
        w.writerow([_csv_cell(k, r.get(k)) for k in cols])
    atomic_write_bytes(path, buf.getvalue().encode("utf-8"))
    return Path(path)


def _restore(key: str, v: Any) -> Any:
    if key in FLOAT_KEYS:
        if v is None or v == "":
            return math.nan
        return float(v)
    if key in INT_KEYS:
        return None if v in (None, "") else int(float(v))
    return v


def load_csv(path) -> List[Row]:
    """Read rows written by :func:`export_csv`, with their types restored."""
    with open(path, newline="", encoding="utf-8") as f:
        out = []
        for rec in csv.DictReader(f):
            row: Row = {}
            for k, s in rec.items():
                if k in JSON_KEYS:
                    row[k] = json.loads(s) if s else None
                elif k in FLOAT_KEYS or k in INT_KEYS:
                    row[k] = _restore(k, s)
                else:
                    row[k] = s if s != "" else None
            out.append(row)
    return out


# -- JSON -----------------------------------------------------------------------------------------
def _json_value(v: Any) -> Any:
    v = _plain(v)
    if isinstance(v, float):
        if math.isnan(v):
            return None
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
    if isinstance(v, dict):
        return {k: _json_value(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_json_value(x) for x in v]
    return v


def export_json(rows: Sequence[Row], path, meta: Optional[Mapping[str, Any]] = None,
                extra: Optional[Mapping[str, Any]] = None) -> Path:
    """Write ``{"format", "meta", "rows", ...extra}`` as standard JSON; return the path."""
    doc = {"format": JSON_FORMAT, "meta": _json_value(dict(meta or {})),
           "rows": [{k: _json_value(r.get(k)) for k in _columns(rows)} for r in rows]}
    doc.update({k: _json_value(v) for k, v in (extra or {}).items()})
    atomic_write_bytes(path, (json.dumps(doc, indent=1, allow_nan=False) + "\n").encode("utf-8"))
    return Path(path)


def load_json(path) -> List[Row]:
    """Read the rows of a file written by :func:`export_json`, with their types restored."""
    doc = json.loads(Path(path).read_text(encoding="utf-8"))
    rows = doc["rows"] if isinstance(doc, dict) else doc
    out = []
    for r in rows:
        row = {}
        for k, v in r.items():
            if k in FLOAT_KEYS:
                row[k] = math.nan if v is None else float(v)
            else:
                row[k] = _restore(k, v)
        out.append(row)
    return out


def load_rows(path) -> List[Row]:
    """Rows from a ``.csv`` or ``.json`` benchmark file."""
    return load_csv(path) if Path(path).suffix.lower() == ".csv" else load_json(path)


# -- tables ---------------------------------------------------------------------------------------
def _fmt(v: Any, digits: int) -> str:
    if v is None or _is_nan(v):
        return "–"
    if isinstance(v, float):
        if math.isinf(v):
            return "∞" if v > 0 else "-∞"
        return f"{v:.{digits}f}"
    return " ".join(str(v).split()).replace("|", "\\|")  # one line per row, pipes escaped


# column -> (header, digits)
DEFAULT_COLUMNS = {"image": ("image", 0), "label": ("codec", 0), "compression_ratio": ("CR", 2),
                   "bpp": ("bpp", 3), "psnr": ("PSNR dB", 2), "ssim": ("SSIM", 4), "ms_ssim": ("MS-SSIM", 4),
                   "pearson_r": ("r", 4), "encode_s": ("enc s", 3), "decode_s": ("dec s", 3),
                   "p2_pearson_r": ("pred r vs GT", 4), "p2_ref_pearson_r": ("pred r vs pred(orig)", 4),
                   "status": ("status", 0)}


OPTIONAL_COLUMNS = ("p2_pearson_r", "p2_ref_pearson_r")


def markdown_table(records: Iterable[Mapping[str, Any]], columns: Optional[Mapping[str, Any]] = None) -> str:
    """A GitHub Markdown table of ``records``; ``columns`` maps key -> (header, float digits).

    Phase-2 columns are left out when no record has a value in them.
    """
    records = list(records)
    cols = dict(columns or DEFAULT_COLUMNS)
    for k in OPTIONAL_COLUMNS:
        if k in cols and not any(isinstance(r.get(k), float) and not math.isnan(r[k]) for r in records):
            cols.pop(k)
    lines = ["| " + " | ".join(h for h, _ in cols.values()) + " |",
             "|" + "|".join("---" if d == 0 else "---:" for _, d in cols.values()) + "|"]
    for r in records:
        cells = []
        for k, (_, d) in cols.items():
            v = r.get(k)
            if k == "status" and v == "error":
                v = f"error: {r.get('error')}"
            cells.append(_fmt(v, d))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _ok(rows: Sequence[Row]) -> List[Row]:
    return [r for r in rows if r.get("status") == "ok"]


def _by(rows: Iterable[Row], *keys: str) -> Dict[Any, List[Row]]:
    out: Dict[Any, List[Row]] = {}
    for r in rows:
        out.setdefault(tuple(r.get(k) for k in keys) if len(keys) > 1 else r.get(keys[0]), []).append(r)
    return out


def bd_rate_table(rows: Sequence[Row], anchor: str = DEFAULT_ANCHOR, method: str = "pchip") -> List[Dict[str, Any]]:
    """BD-rate (PSNR and SSIM, %, negative = fewer bits) and BD-PSNR (dB) of every method vs ``anchor``.

    Computed per image over bpp; ``anchor`` is a method name (codec id for plain codecs).
    Methods with fewer than two lossy points (lossless baselines, single settings) are left out;
    curves that do not overlap the anchor's get NaN.
    """
    out = []
    for image, rs in _by(_ok(rows), "image").items():
        methods = _by(rs, "method")
        if anchor not in methods:
            continue
        a = methods[anchor]
        for m, t in methods.items():
            if m == anchor or len({r["bpp"] for r in t if math.isfinite(r.get("psnr", math.nan))}) < 2:
                continue  # lossless baselines and single settings have no curve
            rec = {"image": image, "method": m, "anchor": anchor, "family": t[0].get("family"), "points": len(t)}
            for q in ("psnr", "ssim"):
                rec[f"bd_rate_{q}"] = bd_rate([r["bpp"] for r in a], [r[q] for r in a],
                                              [r["bpp"] for r in t], [r[q] for r in t], method=method)
            rec["bd_psnr"] = bd_quality([r["bpp"] for r in a], [r["psnr"] for r in a],
                                        [r["bpp"] for r in t], [r["psnr"] for r in t], method=method)
            out.append(rec)
    return out


def best_cr_summary(rows: Sequence[Row], ssim_min: float = SSIM_THRESHOLD) -> List[Dict[str, Any]]:
    """Per image and codec family: the row with the highest compression ratio at SSIM ≥ ``ssim_min``."""
    out = []
    for (image, family), rs in _by(_ok(rows), "image", "family").items():
        good = [r for r in rs if isinstance(r.get("ssim"), float) and r["ssim"] >= ssim_min]
        rec = {"image": image, "family": family, "ssim_min": ssim_min}
        if good:
            best = max(good, key=lambda r: r["compression_ratio"])
            rec.update({k: best.get(k) for k in ("label", "method", "quality", "compression_ratio", "bpp",
                                                  "psnr", "ssim", "p2_pearson_r")})
        else:
            rec.update(label=None, compression_ratio=math.nan)
        out.append(rec)
    return sorted(out, key=lambda r: (str(r["image"]), str(r["family"])))


SUMMARY_COLUMNS = {"image": ("image", 0), "family": ("family", 0), "label": ("best codec", 0),
                   "compression_ratio": ("CR", 2), "bpp": ("bpp", 3), "psnr": ("PSNR dB", 2),
                   "ssim": ("SSIM", 4), "p2_pearson_r": ("pred r vs GT", 4)}
BD_COLUMNS = {"image": ("image", 0), "method": ("method", 0), "bd_rate_psnr": ("BD-rate PSNR %", 1),
              "bd_rate_ssim": ("BD-rate SSIM %", 1), "bd_psnr": ("BD-PSNR dB", 2)}


def summary_markdown(rows: Sequence[Row], anchor: str = DEFAULT_ANCHOR, ssim_min: float = SSIM_THRESHOLD) -> str:
    """The two short tables a reader wants first: best CR at SSIM ≥ threshold, and BD-rates."""
    parts = [f"### Highest compression ratio at SSIM ≥ {ssim_min:g}, per codec family\n",
             markdown_table(best_cr_summary(rows, ssim_min), SUMMARY_COLUMNS)]
    bd = bd_rate_table(rows, anchor)
    if bd:
        parts += [f"\n### BD-rate vs {anchor} (bpp; negative = fewer bits for the same quality)\n",
                  markdown_table(bd, BD_COLUMNS)]
    else:
        parts.append(f"\n(no BD-rate table: it needs the anchor {anchor!r} and another method with at least "
                     "two lossy points on the same image)\n")
    return "".join(parts)


def row_notes(rows: Sequence[Row]) -> List[str]:
    """The rows' own notes (weights of another modality, a label image coded lossily, …), once per image and
    note, with the rows that carry it."""
    groups: Dict[tuple, List[str]] = {}
    for r in rows:
        if r.get("note"):
            groups.setdefault((r.get("image"), r["note"]), []).append(str(r.get("label") or r.get("codec")))
    return [f"{image} ({', '.join(labels)}): {note}" for (image, note), labels in groups.items()]


def export_markdown(rows: Sequence[Row], path, title: str = "Benchmark results", anchor: str = DEFAULT_ANCHOR,
                    notes: Sequence[str] = (), meta: Optional[Mapping[str, Any]] = None) -> Path:
    """Write a Markdown report: summary, BD-rate table, notes (the run's and the rows'), and the per-row table."""
    parts = [f"# {title}\n\n"]
    for k, v in (meta or {}).items():
        parts.append(f"- {k}: {v}\n")
    parts += ["\n", summary_markdown(rows, anchor)]
    notes = [*notes, *row_notes(rows)]
    if notes:
        parts += ["\n### Notes\n\n"] + [f"- {n}\n" for n in notes]
    parts += ["\n### All rows\n\n", markdown_table(rows)]
    atomic_write_bytes(path, "".join(parts).encode("utf-8"))
    return Path(path)


# -- plots ----------------------------------------------------------------------------------------
def plot_rd(rows: Sequence[Row], path, metric: str = "psnr") -> Optional[Path]:
    """A rate–distortion PNG of ``metric``: one panel per image (:func:`.plots.rd_figure`).

    Returns None (and writes nothing) when no row has a finite value of ``metric``.
    """
    from .plots import plot_metrics, rd_figure

    if metric not in plot_metrics(rows):
        return None
    buf = io.BytesIO()
    rd_figure(rows, metric, panels=True, size=(650, 450)).savefig(buf, format="png", dpi=110)
    atomic_write_bytes(path, buf.getvalue())
    return Path(path)


def export_plots(rows: Sequence[Row], out_dir) -> List[Path]:
    """RD plots of PSNR, SSIM and (when present) the phase-2 metric; return the written paths."""
    out = []
    from .plots import EXPORTED

    for metric in EXPORTED:
        p = plot_rd(rows, Path(out_dir) / f"rd_{metric}.png", metric)
        if p is not None:
            out.append(p)
    return out


def export_all(rows: Sequence[Row], out_dir, anchor: str = DEFAULT_ANCHOR, notes: Sequence[str] = (),
               meta: Optional[Mapping[str, Any]] = None, title: str = "Benchmark results") -> Dict[str, Any]:
    """CSV, JSON (rows + BD-rate + summary), Markdown and PNG plots into ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths: Dict[str, Any] = {
        "csv": export_csv(rows, out / "results.csv"),
        "json": export_json(rows, out / "results.json", meta=dict(meta or {}, notes=list(notes)),
                            extra={"bd_rate": bd_rate_table(rows, anchor), "best_cr": best_cr_summary(rows)}),
        "markdown": export_markdown(rows, out / "results.md", title=title, anchor=anchor, notes=notes, meta=meta),
    }
    paths["plots"] = export_plots(rows, out)
    return paths


__all__ = ["best_cr_summary", "bd_rate_table", "export_all", "export_csv", "export_json", "export_markdown",
           "export_plots", "load_csv", "load_json", "load_rows", "markdown_table", "plot_rd", "summary_markdown"]
