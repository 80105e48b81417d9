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

A second writer, "microcomp, choose codec…", asks for the codec and quality in a small dialog
(remembered between saves) and encodes the layer with them.

Refusals (RGB, NaN, 4D, a codec without weights for that quality…) are shown to the user as
napari error notifications with the plugin's own message; :func:`save_layer` is the same write
for scripts and raises instead.

Layer name, scale and translate are stored in the stream's header and restored by the reader.
"""
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np

from ._validate import MASK_NOTE, grey_samples, mask_as_uint8
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


def save_layer(path: str, data: Any, meta: Dict[str, Any], codec: Optional[str] = None,
               quality: Optional[int] = None) -> List[str]:
    """Write one image layer to ``path`` (``.mcz``); return the written path; raise MicrocompError.

    ``codec`` None: the layer's own stream when it is an unchanged reconstruction, else lossless
    (:data:`DEFAULT_CODEC`). A codec name: that codec at ``quality`` (lossy or lossless as the
    codec is), whatever the layer is.
    """
    from .codecs import get_codec
    from .io_write import atomic_write_bytes

    name = meta.get("name") or Path(path).stem
    if meta.get("multiscale"):
        data = data[0]  # full resolution level
    array = np.asarray(data)
    if meta.get("rgb"):   # a grey image saved as RGB (equal channels) is stored as its one channel
        array = grey_samples(array)
        if array is None:
            raise InputError(f"layer {name!r} is RGB; .mcz stores single-channel images "
                             "(split the channels first: right-click > Split RGB)")
    array = mask_as_uint8(array) if array.dtype == bool else array
    p = Path(path)
    if p.suffix.lower() != ".mcz":
        p = p.with_suffix(p.suffix + ".mcz") if p.suffix else p.with_suffix(".mcz")
    header_meta: Dict[str, Any] = {"name": meta.get("name")}
    for key in ("scale", "translate"):
        if meta.get(key) is not None:
            header_meta[key] = [float(v) for v in meta[key]]
    try:
        if codec is not None:
            stream = get_codec(codec, quality=quality).encode(array, meta=header_meta)
        else:
            stream = _stored_stream(array, meta.get("metadata") or {})
            if stream is not None:
                stream = _with_meta(stream, header_meta)
            else:
                stream = encode_lossless(array, header_meta)
    except MicrocompError as exc:
        raise type(exc)(f"layer {name!r}: {exc}") from exc
    atomic_write_bytes(p, stream)
    return [str(p)]


def _notify_refusal(path: str, meta: Dict[str, Any], exc: BaseException) -> List[str]:
    """Show the plugin's own message as a napari error notification; write nothing.

    napari turns a writer's ValueError into "No data written! A plugin could not be found", so
    the refusal is reported here and the writer returns no paths.
    """
    from napari.utils.notifications import show_error

    msg = str(exc) if isinstance(exc, MicrocompError) else f"unexpected {type(exc).__name__}: {exc}"
    show_error(f"napari-microcomp did not save {Path(path).name}: {msg}")
    return []


def _saved(paths: List[str], meta: Dict[str, Any], data: Any) -> List[str]:
    from napari.utils.notifications import show_info

    if paths and meta.get("rgb"):
        show_info(f"napari-microcomp: layer {meta.get('name')!r} is RGB with equal channels (a grey image); "
                  "saved its one channel")
    if paths and getattr(data, "dtype", None) == bool:
        show_info(f"napari-microcomp: layer {meta.get('name')!r} {MASK_NOTE}")
    return paths


def write_single_image(path: str, data: Any, meta: Dict[str, Any]) -> List[str]:
    """npe2 writer "microcomp lossless": the layer's own stream, else lossless JPEG XL."""
    try:
        return _saved(save_layer(path, data, meta), meta, data)
    except (MicrocompError, OSError) as exc:
        return _notify_refusal(path, meta, exc)


def write_single_image_choose(path: str, data: Any, meta: Dict[str, Any]) -> List[str]:
    """npe2 writer "microcomp, choose codec…": asks for codec and quality, then writes."""
    from ._qt.save_dialog import ask_codec

    choice = ask_codec(meta.get("name") or Path(path).stem, np.ndim(data) - (1 if meta.get("rgb") else 0))
    if choice is None:
        return []  # the user cancelled the dialog
    try:
        return _saved(save_layer(path, data, meta, *choice), meta, data)
    except (MicrocompError, OSError) as exc:
        return _notify_refusal(path, meta, exc)
