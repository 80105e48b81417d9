"""Codecs: one interface (:class:`Codec`), one registry, one container format.

>>> from napari_microcomp.codecs import get_codec, decode
>>> data = get_codec("jpegxl", quality=4).encode(image)      # doctest: +SKIP
>>> restored = decode(data)                                    # doctest: +SKIP
"""
from . import classical as _classical  # noqa: F401  (registers the imagecodecs codecs)
from .base import DEFAULT_QUALITY, QUALITIES, Codec, SliceCodec
from .registry import (available_codecs, codec_class, codec_from_config, decode, get_codec, info, is_wrapper,
                       register_codec)

__all__ = ["Codec", "SliceCodec", "QUALITIES", "DEFAULT_QUALITY", "available_codecs", "codec_class",
           "codec_from_config", "decode", "get_codec", "info", "is_wrapper", "register_codec"]
