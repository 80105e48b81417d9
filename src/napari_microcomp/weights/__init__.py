"""Weight files for codecs and label-free models alike: where they are, loading, exporting, provenance, download.

This folder also holds the shipped files (``codecs/**/*.pt``, ``labelfree/*.pt`` and their READMEs).

- :mod:`.locate`: where weights are found — ``$MICROCOMP_WEIGHTS`` folders (``os.pathsep``-separated),
  then the shipped folder; modality subfolders (``transmitted/``, ``fluorescence/``); by fingerprint;
  the shipped label-free model names.
- :mod:`.load`: reading weight files (always ``torch.load(..., weights_only=True)``) into ready models,
  one process-wide cache keyed by the file's identity.
- :mod:`.export`: writing the compact fp16 weight files (codec and label-free formats).
- :mod:`.fingerprint`: file fingerprints (``weights_id``) and the provenance table.
- :mod:`.download`: CompressAI-format state dicts by https URL (pooch, verified SHA-256).

Importing this package imports neither torch nor the submodules; names are resolved on first use.
Layer: above :mod:`napari_microcomp.models` (architectures), below the codecs; it never imports
``codecs`` or ``labelfree``.
"""
import importlib

_WHERE = {
    "locate": ("SHIPPED_ROOT", "SHIPPED_DIR", "LABELFREE_DIR", "ENV_WEIGHTS", "LABELFREE_MODELS", "weight_dirs",
               "candidate_files", "find_weights", "find_by_id", "is_shipped", "available_qualities",
               "missing_weights_message", "known_models", "available_models", "labelfree_path"),
    "load": ("FORMAT", "LABELFREE_FORMAT", "LABELFREE_VERSION", "LoadedModel", "load_weights", "load_url",
             "get_model", "clear_cache", "cached", "read_labelfree", "encodable"),
    "export": ("export_weights", "export_labelfree", "retire", "recompact"),
    "fingerprint": ("file_id", "plain_meta", "provenance_markdown"),
    "download": ("ENV_CACHE", "cache_dir", "secure_url", "published_prefixes", "cached_url", "fetch_url"),
}
_NAMES = {name: mod for mod, names in _WHERE.items() for name in names}
__all__ = sorted(_NAMES)


def __getattr__(name: str):
    mod = _NAMES.get(name)
    if mod is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{mod}"), name)


def __dir__():
    return sorted(set(globals()) | set(_NAMES) | set(_WHERE))
