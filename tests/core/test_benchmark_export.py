"""Exports parse back; BD-rate and best-CR tables agree with direct computation; plots are PNGs."""
import json
import math

import numpy as np
import pytest

from helpers import smooth_image
from napari_microcomp._progress import result_of
from napari_microcomp.bdrate import bd_rate
from napari_microcomp.benchmark import (ROW_KEYS, bd_rate_table, best_cr_summary, export_all, iter_benchmark,
                                        load_csv, load_json, markdown_table)


@pytest.fixture(scope="module")
def rows():
    img = smooth_image((48, 64), np.uint16, seed=4, bits=12)
    out = result_of(iter_benchmark({"img": img}, ["jpeg2k", "jpegls", "zstd"], qualities=[1, 3, 5, 8]))
    out[1] = dict(out[1], status="error", error="RuntimeError: a | pipe, \"quotes\"\nand a newline",
                  psnr=math.nan, compressed_bytes=None)
    return out


def _same(a, b):
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b


@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_exports_parse_back_exactly(rows, tmp_path, fmt):
    paths = export_all(rows, tmp_path, anchor="jpeg2k", notes=["a note"], meta={"run": "test"})
    back = load_csv(paths["csv"]) if fmt == "csv" else load_json(paths["json"])
    assert len(back) == len(rows)
    for r, b in zip(rows, back):
        assert list(b) == list(ROW_KEYS)
        bad = [k for k in ROW_KEYS if not _same(r[k], b[k])]
        assert not bad, [(k, r[k], b[k]) for k in bad]
    assert any(r["psnr"] == math.inf for r in back)  # the lossless row's PSNR survives as inf


def test_json_is_standard_and_carries_tables(rows, tmp_path):
    paths = export_all(rows, tmp_path)
    text = paths["json"].read_text()
    assert "NaN" not in text and "Infinity" not in text
    doc = json.loads(text)
    assert doc["meta"]["notes"] == [] and len(doc["bd_rate"]) >= 1 and len(doc["best_cr"]) >= 1
    md = paths["markdown"].read_text()
    assert "Highest compression ratio at SSIM ≥ 0.94" in md and "BD-rate vs jpeg2k" in md
    for p in paths["plots"]:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 5000
    assert {p.name for p in paths["plots"]} == {"rd_psnr.png", "rd_ssim.png"}  # no phase 2: no phase-2 plot


def test_markdown_table_shape_and_escaping(rows):
    lines = markdown_table(rows).strip().splitlines()
    assert len(lines) == len(rows) + 2
    ncol = lines[0].count("|")
    assert all(line.count("|") - line.count("\\|") == ncol for line in lines)
    assert "error: RuntimeError" in lines[3]


def test_bd_rate_table_matches_direct_call(rows):
    table = bd_rate_table(rows, anchor="jpeg2k")
    assert [t["method"] for t in table] == ["jpegls"]  # zstd is one lossless point: no curve
    ok = [r for r in rows if r["status"] == "ok"]
    a = [r for r in ok if r["codec"] == "jpeg2k"]
    t = [r for r in ok if r["codec"] == "jpegls"]
    expect = bd_rate([r["bpp"] for r in a], [r["psnr"] for r in a], [r["bpp"] for r in t], [r["psnr"] for r in t])
    assert _same(table[0]["bd_rate_psnr"], expect)
    assert bd_rate_table(rows, anchor="not-there") == []


def test_best_cr_summary_matches_direct_filter(rows):
    summary = {s["family"]: s for s in best_cr_summary(rows, ssim_min=0.94)}
    for fam, s in summary.items():
        good = [r for r in rows if r["family"] == fam and r["status"] == "ok" and r["ssim"] >= 0.94]
        assert s["compression_ratio"] == max(r["compression_ratio"] for r in good)
    assert set(summary) == {"classical", "lossless"}


def test_rd_figure_panels_only_for_images_with_values():
    from napari_microcomp.benchmark.plots import rd_figure

    def row(image, q, p2):
        return {"image": image, "method": "jpegxl", "family": "classical", "status": "ok", "bpp": 0.1 * q,
                "psnr": 30.0 + q, "p2_pearson_r": p2}
    rows = [row("a", q, 0.8 + 0.01 * q) for q in (1, 2, 3)] + [row("b", q, float("nan")) for q in (1, 2, 3)]
    assert len(rd_figure(rows, "p2_pearson_r", panels=True).axes) == 1
    assert len(rd_figure(rows, "psnr", panels=True).axes) == 2


def test_a_method_keeps_its_colour_in_every_panel_and_in_the_advice_plot():
    """Colours came from each panel's curve order: a panel without JPEG 2000 gave JPEG XL JPEG 2000's colour."""
    from types import SimpleNamespace

    from napari_microcomp.advise_report import figure
    from napari_microcomp.benchmark.plots import rd_figure

    def row(image, codec, q):
        return {"image": image, "method": codec, "codec": codec, "family": "classical", "status": "ok",
                "bpp": 0.1 * q, "psnr": 30.0 + q}
    rows = [row("a", c, q) for c in ("jpeg2k", "jpegxl") for q in (1, 2)] + [row("b", "jpegxl", q) for q in (1, 2)]
    colours = [{line.get_label(): line.get_color() for line in ax.get_lines()}
               for ax in rd_figure(rows, "psnr", panels=True).axes]
    assert colours[0]["jpegxl"] == colours[1]["jpegxl"] != colours[0]["jpeg2k"]
    point = {"complete": True, "bpp": 0.2, "psnr": 40.0}
    advice = SimpleNamespace(rows=[SimpleNamespace(codec=c, points=[point]) for c in ("jpegxl", "jpeg2k")],
                             tolerance={"psnr": 35.0}, winner=None)   # ranked: JPEG XL first
    advised = {line.get_label(): line.get_color() for line in figure(advice, "psnr").axes[0].get_lines()}
    assert advised["jpeg2k"] == colours[0]["jpeg2k"] and advised["jpegxl"] == colours[0]["jpegxl"]


def test_row_notes_reach_the_markdown_once_per_image_and_note(rows, tmp_path):
    noted = [dict(r, note="the image looks like a label image") if r["codec"] == "jpeg2k" else r for r in rows]
    md = export_all(noted, tmp_path, notes=["a run note"])["markdown"].read_text()
    notes = md.split("### Notes")[1].split("### All rows")[0]
    labels = ", ".join(r["label"] for r in rows if r["codec"] == "jpeg2k")
    assert "- a run note" in notes
    assert notes.count("label image") == 1 and f"img ({labels}): the image looks like a label image" in notes
