"""Codec registry (numcodecs-style): names -> classes, configs -> codecs, streams -> arrays."""
import difflib
from typing import Any, Callable, Dict, List, Optional, Type

import numpy as np

from .. import container
from ..errors import CodecError
from .base import Codec

_REGISTRY: Dict[str, Type[Codec]] = {}
# Set by the package (``codecs/__init__``): imports the codecs that are too heavy to import with it.
_loader: Optional[Callable[[], None]] = None
_lazy_loaded = False


def set_loader(fn: Callable[[], None]) -> None:
    """Register the function that imports the optional codec modules on first need."""
    global _loader
    _loader = fn


def register_codec(cls: Type[Codec]) -> Type[Codec]:
    """Class decorator: make ``cls`` reachable by its ``codec_id``."""
    if not cls.codec_id:
        raise CodecError(f"{cls.__name__} has no codec_id")
    _REGISTRY[cls.codec_id] = cls
    return cls


def _load_lazy() -> None:
    global _lazy_loaded
    if _lazy_loaded:
        return
    _lazy_loaded = True
    if _loader is not None:
        _loader()


# what people call the codecs (the hint names ours; accepting them would give one codec two names)
_ALIASES = {"jpeg2000": "jpeg2k", "j2k": "jpeg2k", "jp2": "jpeg2k", "openjpeg": "jpeg2k", "jxl": "jpegxl",
            "jxr": "jpegxr", "hdphoto": "jpegxr", "charls": "jpegls", "hj2k": "htj2k"}


def codec_class(name: str) -> Type[Codec]:
    if not isinstance(name, str):
        raise CodecError(f"a codec is named by a string (e.g. 'jpegxl'), got {type(name).__name__} {name!r}")
    if name not in _REGISTRY:
        _load_lazy()
    try:
        return _REGISTRY[name]
    except KeyError:
        key = name.lower().replace("_", "-").replace(" ", "")
        bare = {n.replace("-", ""): n for n in _REGISTRY}
        key = bare.get(key.replace("-", "")) or _ALIASES.get(key.replace("-", ""), key)
        close = [n for n in _REGISTRY if key in n] or difflib.get_close_matches(key, list(_REGISTRY), n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise CodecError(f"unknown codec {name!r}.{hint} Run `microcomp codecs` for the list.") from None


def available_codecs(family: Optional[str] = None, include_unavailable: bool = False) -> List[str]:
    """Names of registered codecs (optionally of one family), available ones only by default."""
    _load_lazy()
    return [n for n, c in _REGISTRY.items()
            if (family is None or c.family == family) and (include_unavailable or c.available())]


def is_wrapper(name: str) -> bool:
    """True for codecs that wrap another codec (the tiling wrapper, the study's TIFF-tiles setting):
    they are ways to run a method, not methods of their own."""
    cls = codec_class(name)
    return cls.family == "wrapper" or bool(cls.wrapper)


def get_codec(name: str, quality: Optional[int] = None, **params: Any) -> Codec:
    """Return a configured codec, e.g. ``get_codec("jpegxl", quality=4)``."""
    cls = codec_class(name)
    if not cls.available():
        raise CodecError(f"codec {name!r} is not available in this installation")
    return cls(quality=quality, **params)


def codec_from_config(config: Dict[str, Any]) -> Codec:
    if not isinstance(config, dict) or "id" not in config:
        raise CodecError(f"not a codec config: {config!r}")
    return codec_class(config["id"]).from_config(config)


def decode(data, verify: bool = True) -> np.ndarray:
    """Decode any microcomp stream, reading the codec from its header.

    ``verify=False`` returns a reconstruction that does not match the checksum its encoder recorded (with
    a warning) instead of refusing it: to rescue a stream written on a computer whose decoder rounds a
    few pixels differently (lossy JPEG XL and the learned codecs are not bit-exact across CPU types).
    Every structural check still applies.
    """
    if not verify:
        from .base import VERIFY

        token = VERIFY.set(False)
        try:
            return decode(data)
        finally:
            VERIFY.reset(token)
    header, payloads = container.unpack(data)
    from ..errors import StreamError

    try:
        codec = codec_from_config(header.codec)
    except CodecError as exc:
        raise StreamError(f"stream needs codec {header.codec_id!r}: {exc}") from exc
    except (TypeError, ValueError, OverflowError) as exc:   # a header parameter of the wrong kind
        raise StreamError(f"{header.codec_id}: the stream's codec parameters are invalid ({exc})") from exc
    return codec._decode_checked(header, payloads)


def info(data) -> Dict[str, Any]:
    """The header of a stream as a dict, plus sizes."""
    header, offset = container.read_header(data)
    d = header.to_dict()
    d["format_version"] = container.stream_version(data)
    d["header_bytes"] = offset
    d["payload_bytes"] = sum(n for n, _ in header.payloads)
    d["total_bytes"] = len(data)
    return d
