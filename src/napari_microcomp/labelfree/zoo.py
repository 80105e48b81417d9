"""Shipped label-free models by name, plus user paths: found, loaded and cached by :mod:`napari_microcomp.weights`.

Shipped files live in ``napari_microcomp/weights/labelfree/`` (provenance in its README.md).
"""
from pathlib import Path

from ..weights.locate import available_models, known_models, labelfree_path
from ..io_checks import real_path

__all__ = ["available_models", "known_models", "load_model", "weights_path"]


def weights_path(name_or_path) -> Path:
    """The weights file for a shipped model name or a user path; WeightsNotFoundError if absent."""
    return labelfree_path(name_or_path)


def load_model(name_or_path, device: str = "cpu"):
    """Return a :class:`~napari_microcomp.labelfree.model.LabelFreeModel` (cached per file and device).

    Parameters
    ----------
    name_or_path : a name from :func:`available_models` or a path to a ``.pt`` weights file.
    device : ``"cpu"`` (default), ``"cuda"`` or ``"cuda:N"``.
    """
    import re

    from ..errors import InputError
    from ..weights.load import cached, file_key
    from .model import LabelFreeModel

    if not isinstance(device, str) or not re.fullmatch(r"cpu|cuda(:\d+)?", device):
        raise InputError(f"device must be 'cpu', 'cuda' or 'cuda:N', got {device!r}")

    p = real_path(labelfree_path(name_or_path))
    # The file's identity (mtime, size) is part of the key so a retrained file is reloaded.
    return cached(file_key("labelfree", p, str(device)), lambda: LabelFreeModel.from_file(p, device=device))
