"""npe2 writer: saves an image layer as a microcomp compressed file (``.mcz``).

What gets written
-----------------
* A reconstruction layer made by the Compress or Benchmark widget still carries the stream that
  produced it (``layer.metadata["microcomp"]["stream"]``). If the layer's pixels are unchanged
  (checked with a CRC32 of the data), that exact stream is written: saving never re-encodes an
  already lossy image and the file is the one whose metrics the widget showed.
* Any other image layer is compressed **losslessly** with :data:`DEFAULT_CODEC` (JPEG XL in
  lossless mode; it accepts uint8/uint16 2D and 3D data). A "Save" command should never
  silently discard information; for a lossy file pick a codec and quality in the Compress
  widget and save its reconstruction layer, or use ``microcomp compress`` on the command line.
  If the default codec is unavailable, or cannot store the layer's pixel type (e.g. float32),
  the first available codec of the ``lossless`` family that can is used.

Layer name, scale and translate are stored in the stream's header and restored by the reader.
"""
from pathlib import Path
from typing import Any, Dict, List

import numpy as np

from .errors import CodecError, InputError, MicrocompError

DEFAULT_CODEC = "jpegxl"


def _lossless_candidates() -> List[str]:
    from .codecs import available_codecs

    names = available_codecs()
    ordered = [DEFAULT_CODEC] if DEFAULT_CODEC in names else []
    ordered += [n for n in available_codecs("lossless") if n not in ordered]
    return ordered


def encode_lossless(array: np.ndarray, meta: Dict[str, Any]) -> bytes:
    """Encode ``array`` with the default lossless codec (or the first lossless one that accepts it)."""
    from .codecs import get_codec

    errors = []
    for name in _lossless_candidates():
        try:
            codec = get_codec(name, lossless=True)
            return codec.encode(array, meta=meta)
        except InputError:
            raise
        except MicrocompError as exc:
            errors.append(f"{name}: {exc}")
    raise CodecError("no lossless codec could store this layer"
                     + (": " + "; ".join(errors) if errors else " (none is available)"))


def _stored_stream(array: np.ndarray, layer_meta: Dict[str, Any]):
    """The stream that produced this (unchanged) reconstruction layer, or None."""
    from .container import array_crc32

    info = (layer_meta or {}).get("microcomp") or {}
    stream, crc = info.get("stream"), info.get("data_crc32")
    if not isinstance(stream, (bytes, bytearray)) or crc is None:
        return None
    a = np.asarray(array)
    if a.dtype.name != info.get("dtype") or array_crc32(a) != crc:
        return None  # edited since: re-encode losslessly instead
    return bytes(stream)


def _with_meta(stream: bytes, extra: Dict[str, Any]) -> bytes:
    """The same payloads under a header whose ``meta`` also holds the layer's name and geometry."""
    from . import container

    header, payloads = container.unpack(stream)
    header.meta = {**header.meta, **extra}
    return container.pack(header, payloads)


def write_single_image(path: str, data: Any, meta: Dict[str, Any]) -> List[str]:
    """Write one image layer to ``path`` (``.mcz``); return the written path."""
    from .io import atomic_write_bytes

    if meta.get("rgb"):
        raise InputError("RGB layers cannot be saved as .mcz: microcomp stores single-channel images")
    if meta.get("multiscale"):
        data = data[0]  # full resolution level
    array = np.asarray(data)
    p = Path(path)
    if p.suffix.lower() != ".mcz":
        p = p.with_suffix(p.suffix + ".mcz") if p.suffix else p.with_suffix(".mcz")
    header_meta: Dict[str, Any] = {"name": meta.get("name")}
    for key in ("scale", "translate"):
        if meta.get(key) is not None:
            header_meta[key] = [float(v) for v in meta[key]]
    stream = _stored_stream(array, meta.get("metadata") or {})
    if stream is not None:
        stream = _with_meta(stream, header_meta)
    else:
        stream = encode_lossless(array, header_meta)
    atomic_write_bytes(p, stream)
    return [str(p)]
