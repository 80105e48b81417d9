"""Codecs: one interface (:class:`Codec`), one registry, one container format.

>>> from napari_microcomp.codecs import get_codec, decode
>>> data = get_codec("jpegxl", quality=4).encode(image)      # doctest: +SKIP
>>> restored = decode(data)                                    # doctest: +SKIP
"""
from . import classical as _classical  # noqa: F401  (registers the imagecodecs codecs)
from . import registry as _registry
from .base import DEFAULT_QUALITY, QUALITIES, Codec, SliceCodec
from .registry import (available_codecs, codec_class, codec_from_config, decode, get_codec, info, is_wrapper,
                       register_codec)


def _load_optional() -> None:
    """Import (and so register) the codecs that are not imported with the package: the learned ones
    import torch,  the study's TIFF setting imports tifffile."""
    from . import tiff_tiles, tiled  # noqa: F401
    try:
        from . import learned, volumetric  # noqa: F401
    except ModuleNotFoundError as exc:
        if not (exc.name or "").startswith("napari_microcomp"):
            raise   # a missing dependency of an installed part is a real error


_registry.set_loader(_load_optional)

__all__ = ["Codec", "SliceCodec", "QUALITIES", "DEFAULT_QUALITY", "available_codecs", "codec_class",
           "codec_from_config", "decode", "get_codec", "info", "is_wrapper", "register_codec"]
