"""Deprecated compatibility module: the old "model zoo", split by concern (issue 14).

- architectures: :mod:`napari_microcomp.models.registry` (``ArchSpec``, ``register_arch``, ``get_arch``,
  ``list_archs``, ``build_model``, ``model_widths``, ``LAMBDAS_MSE``);
- coding helpers: :mod:`napari_microcomp.models.coding` (``fixed_threads``, entropy tables);
- weight files: :mod:`napari_microcomp.weights` (finding, loading, exporting, download, provenance).

Only re-exports remain, for code not yet moved to those modules (``_qt/_common.py``, ``benchmark/presets.py``,
``benchmarks/*.py``, some tests). Constants are copies: monkeypatch ``napari_microcomp.weights.locate``, not this
module. Remove this file once nothing imports it.
"""
from ..weights.download import ENV_CACHE, cache_dir, cached_url, fetch_url, published_prefixes, secure_url  # noqa: F401
from ..weights.export import export_weights  # noqa: F401
from ..weights.fingerprint import file_id as _file_id, provenance_markdown  # noqa: F401
from ..weights.load import (FORMAT, LoadedModel, clear_cache, get_model, load_url, load_weights)  # noqa: F401
from ..weights.locate import (ENV_WEIGHTS, SHIPPED_DIR, available_qualities, candidate_files,  # noqa: F401
                              find_by_id, find_weights, missing_weights_message, weight_dirs)
from .coding import fixed_threads  # noqa: F401
from .registry import (LAMBDAS_MSE, ArchSpec, build_model, get_arch, list_archs, model_widths,  # noqa: F401
                       register_arch)

__all__ = ["ENV_CACHE", "cache_dir", "cached_url", "fetch_url", "published_prefixes", "secure_url", "export_weights",
           "_file_id", "provenance_markdown", "FORMAT", "LoadedModel", "clear_cache", "get_model", "load_url",
           "load_weights", "ENV_WEIGHTS", "SHIPPED_DIR", "available_qualities", "candidate_files", "find_by_id",
           "find_weights", "missing_weights_message", "weight_dirs", "fixed_threads", "LAMBDAS_MSE", "ArchSpec",
           "build_model", "get_arch", "list_archs", "model_widths", "register_arch"]

if __name__ == "__main__":  # pragma: no cover
    import sys

    print(provenance_markdown(sys.argv[1] if len(sys.argv) > 1 else None))
