"""npe2 reader: opens microcomp compressed files (``.mcz``) as image layers.

Files are recognised by their magic bytes (``b"\\x89MCZ"``), not only their extension. The
stream is decoded with :func:`napari_microcomp.codecs.decode`, which checks every payload and,
where the codec recorded one, the checksum of the reconstruction: a damaged file raises a
``StreamError`` with a message for the user instead of showing wrong pixels.
"""
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

from .container import MAGIC

PathLike = Union[str, Path]
LayerData = Tuple[Any, Dict[str, Any], str]


def _is_mcz(path: PathLike) -> bool:
    p = Path(path)
    if not p.is_file():
        return False
    try:
        with open(p, "rb") as f:
            return f.read(len(MAGIC)) == MAGIC
    except OSError:
        return False


def napari_get_reader(path: Union[PathLike, Sequence[PathLike]]) -> Optional[Callable]:
    """Return :func:`read_mcz` when every path is a microcomp stream, else None."""
    paths = [path] if isinstance(path, (str, Path)) else list(path)
    if not paths or not all(_is_mcz(p) for p in paths):
        return None
    return read_mcz


def _layer_kwargs(header: Dict[str, Any], ndim: int, default_name: str) -> Dict[str, Any]:
    meta = header.get("meta") or {}
    kwargs: Dict[str, Any] = {"name": meta.get("name") or default_name}
    scale = meta.get("scale")
    if scale is None and meta.get("pixel_size"):
        scale = [s if s else 1.0 for s in meta["pixel_size"]][-ndim:]
    if scale is not None and len(scale) == ndim:
        kwargs["scale"] = [float(s) for s in scale]
    translate = meta.get("translate")
    if translate is not None and len(translate) == ndim:
        kwargs["translate"] = [float(t) for t in translate]
    kwargs["metadata"] = {"microcomp": {"header": header}}
    return kwargs


def read_mcz(path: Union[PathLike, Sequence[PathLike]]) -> List[LayerData]:
    """Decode one or more ``.mcz`` files into napari image layer data."""
    from .codecs import decode
    from .codecs.registry import info

    paths = [path] if isinstance(path, (str, Path)) else list(path)
    layers: List[LayerData] = []
    for p in paths:
        data = Path(p).read_bytes()
        header = info(data)
        array = decode(data)
        layers.append((array, _layer_kwargs(header, array.ndim, Path(p).stem), "image"))
    return layers
