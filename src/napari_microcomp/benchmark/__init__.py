"""The two-phase benchmark: engine (rows as a progress generator), presets, exports, scale-out.

>>> from napari_microcomp.benchmark import iter_benchmark, get_preset, export_all   # doctest: +SKIP
>>> from napari_microcomp._progress import drain                                     # doctest: +SKIP
>>> rows = drain(iter_benchmark(images, get_preset("tuned").configs))                # doctest: +SKIP
>>> export_all(rows, "results/")                                                     # doctest: +SKIP

See :mod:`.engine` for the row keys. Importing this package never imports torch, Qt or napari.
"""
from .engine import (FLOAT_KEYS, INT_KEYS, ROW_KEYS, TIMING_KEYS, ModelPredictor, comparable, expand_codecs,
                     iter_benchmark, run_row)
from .export import (bd_rate_table, best_cr_summary, export_all, export_csv, export_json, export_markdown,
                     export_plots, load_csv, load_json, load_rows, markdown_table, plot_rd, summary_markdown)
from .presets import PresetPlan, get_preset

__all__ = ["FLOAT_KEYS", "INT_KEYS", "ROW_KEYS", "TIMING_KEYS", "ModelPredictor", "PresetPlan", "bd_rate_table",
           "best_cr_summary", "comparable", "expand_codecs", "export_all", "export_csv", "export_json",
           "export_markdown", "export_plots", "get_preset", "iter_benchmark", "load_csv", "load_json",
           "load_rows", "markdown_table", "plot_rd", "run_row", "summary_markdown"]
