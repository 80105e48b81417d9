"""The tiling wrapper codec: any codec, tile by tile with halos (see :mod:`napari_microcomp.tiled`).

Every tile is a complete stream of the inner codec; the header records the inner codec's config and the
tile table (per-axis cut positions and halos). On decoding only each tile's core is kept.
"""
import math
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np

from .. import container
from .._progress import checkpoint
from .._validate import (check_image, colour_error, int_offset, looks_like_colour, pixel_type_error, wide_int_offset,
                         with_source_dtype)
from ..errors import CodecError, InputError, StreamError
from ..tiling import Box, Tile, as_axes, grid_edges, tile_grid, tiles_from_edges
from .base import Codec
from .registry import codec_from_config, get_codec, register_codec
from .registry import decode as decode_any

DEFAULT_TILE_3D = (32, 512, 512)
DEFAULT_TILE_2D = (2048, 2048)


def default_tile(codec: Codec, ndim: int) -> Tuple[int, ...]:
    """The codec's preferred tile (attribute ``tile_shape``) or a default sized for ~16–32 MB tiles."""
    pref = getattr(codec, "tile_shape", None)
    if pref is not None:
        pref = tuple(pref)
        return pref[-ndim:] if len(pref) >= ndim else (1,) * (ndim - len(pref)) + pref
    return DEFAULT_TILE_3D if ndim == 3 else DEFAULT_TILE_2D


def default_halo(codec: Codec, ndim: int) -> Tuple[int, ...]:
    """The codec's preferred halo (attribute ``tile_halo``); otherwise none for lossless codecs and
    codecs coding each slice alone along Z, 8 voxels across Y/X for lossy ones."""
    pref = getattr(codec, "tile_halo", None)
    if pref is not None:
        pref = tuple(pref)
        return pref[-ndim:] if len(pref) >= ndim else (0,) * (ndim - len(pref)) + pref
    if codec.lossless or codec.family == "lossless":
        return (0,) * ndim
    z = 2 if codec.native_3d else 0
    return ((z,) if ndim == 3 else ()) + (8, 8)


# compress-tiled has no --channel: one channel must be taken out first
_COLOUR_FIX = "save one channel as its own file first (`microcomp compress --channel N` reads one)"


# -- reading inputs --------------------------------------------------------------------------------
def _out_dtype(dtype: np.dtype) -> np.dtype:
    """The dtype ``check_image`` turns every tile of ``dtype`` into (the same for all tiles)."""
    dt = np.dtype(dtype)
    if dt in (np.uint8, np.uint16, np.float32):
        return dt
    if dt.kind == "f":
        return np.dtype(np.float32)
    if dt.kind in "iu":
        return np.dtype(np.uint16)
    raise pixel_type_error(dt)


def _check_volume(volume) -> Tuple[Tuple[int, ...], np.dtype]:
    shape = getattr(volume, "shape", None)
    dtype = getattr(volume, "dtype", None)
    if shape is None or dtype is None:
        raise InputError(f"expected an array-like with shape and dtype, got {type(volume).__name__}")
    shape = tuple(int(s) for s in shape)
    if len(shape) not in (2, 3):
        raise InputError(f"expected a 2D (Y, X) or 3D (Z, Y, X) single-channel array, got shape {shape}")
    if looks_like_colour(shape):
        raise colour_error(shape, _COLOUR_FIX)
    if min(shape[-2:]) < 8:
        raise InputError(f"image too small to compress meaningfully: shape {shape} (need ≥ 8×8 in Y, X)")
    return shape, _out_dtype(dtype)


def _volume_offset(volume, tiles: Sequence[Tile]) -> Tuple[Optional[int], bool]:
    """For integer types other than uint8/16 (int16, int32, uint32, ...): the one offset every tile is coded
    with, from the whole volume's range (one extra read), and whether they are coded as float32 (a span over
    65,536 levels; ``check_image``); (None, False) for other types."""
    dt = np.dtype(volume.dtype)
    if dt.kind not in "iu" or dt in (np.uint8, np.uint16):
        return None, False
    lo = hi = None
    for t in tiles:
        block = _read(volume, t.core)
        lo = int(block.min()) if lo is None else min(lo, int(block.min()))
        hi = int(block.max()) if hi is None else max(hi, int(block.max()))
    if hi - lo > 65535:
        return wide_int_offset(lo, hi), True
    return int_offset(lo, hi), False   # refuses a span no offset fits, before any tile is written


def _read(volume, box: Box) -> np.ndarray:
    block = volume[tuple(slice(a, b) for a, b in box)]
    if hasattr(block, "compute"):  # dask
        block = block.compute()
    return np.ascontiguousarray(np.asarray(block))


# -- the container header for tiled streams -----------------------------------------------------------
def _tiles_meta(shape: Sequence[int], tile: Tuple[int, ...], halo: Tuple[int, ...]) -> Dict[str, Any]:
    # The tile table: explicit per-axis cut positions (every box follows from them and the halo).
    edges = grid_edges(shape, tile)
    return {"tile": list(tile), "halo": list(halo), "edges": edges,
            "n_tiles": int(np.prod([len(e) - 1 for e in edges]))}


def _tiles_from_header(header: container.Header) -> List[Tile]:
    shape = tuple(header.shape)
    try:
        t = header.meta["tiles"]
        edges = [[int(v) for v in e] for e in t["edges"]]
        halo = [int(v) for v in t["halo"]]
    except (KeyError, TypeError, ValueError) as exc:
        raise StreamError(f"tiled stream has an unreadable tile table ({exc})") from exc
    if len(edges) != len(shape) or len(halo) != len(shape) or any(h < 0 for h in halo) or any(
            len(e) < 2 or e[0] != 0 or e[-1] != s or any(b <= a for a, b in zip(e, e[1:]))
            for e, s in zip(edges, shape)):
        raise StreamError(f"tiled stream has an invalid tile table for shape {list(shape)}: edges {edges}, halo {halo}")
    n = math.prod(len(e) - 1 for e in edges)   # before building them: a table may promise 10^12 tiles
    if n != len(header.payloads):
        raise StreamError(f"tiled stream lists {n} tiles but {len(header.payloads)} payloads")
    tiles = tiles_from_edges(shape, edges, halo)
    if len(tiles) != len(header.payloads):
        raise StreamError(f"tiled stream lists {len(tiles)} tiles but {len(header.payloads)} payloads")
    return tiles


def _whole_numbers(v, what: str) -> List[int]:
    """``v`` (a number or a sequence) as ints; CodecError for a fraction, NaN, inf or text (a cast had made
    NaN a huge negative size and 2.7 a 2, with only a RuntimeWarning)."""
    try:
        f = np.atleast_1d(np.asarray(v, dtype=np.float64))
    except (TypeError, ValueError):
        f = None
    if f is None or f.ndim != 1 or not f.size or not np.all(np.isfinite(f)) or np.any(f != np.round(f)) \
            or np.any(np.abs(f) > 2**31):
        raise CodecError(f"{what} must be whole numbers, got {v!r}")
    return [int(x) for x in f]


@register_codec
class TiledCodec(Codec):
    """Wrap any codec: encode a volume as independent tiles with halos (see module docstring).

    Parameters
    ----------
    inner : str, dict or Codec
        The inner codec (name, config dict or instance).
    tile, halo : int or sequence, optional
        Core size and halo per axis; default from the inner codec (:func:`default_tile`, :func:`default_halo`).
    quality : int, optional
        Passed to the inner codec when ``inner`` is a name.
    """

    codec_id = "tiled"
    plane_work_bytes = 8       # tiles are small; what is left is MS-SSIM's two float32 planes
    supports_lossless = True   # as lossless as its inner codec
    family = "wrapper"  # listed apart from the codecs it wraps; instances take the inner family
    description = "any codec, tile by tile with halos, for volumes larger than memory"

    def __init__(self, inner: Union[str, Dict[str, Any], Codec] = "zstd", tile=None, halo=None,
                 quality: Optional[int] = None, lossless: bool = False):
        if isinstance(inner, dict):
            inner = codec_from_config(inner)
        elif not isinstance(inner, Codec):
            inner = get_codec(str(inner), quality=quality, **({"lossless": True} if lossless else {}))
        if isinstance(inner, TiledCodec):
            raise CodecError("a tiled codec cannot wrap another tiled codec")
        super().__init__(lossless=inner.lossless)
        self.inner = inner
        self.tile = None if tile is None else _whole_numbers(tile, "tile")
        self.halo = None if halo is None else _whole_numbers(halo, "halo")
        self.quality = inner.quality   # the inner codec's level (None for a native parameter)
        self.family = inner.family
        self.native_3d = inner.native_3d

    def get_config(self) -> Dict[str, Any]:
        return {"id": self.codec_id, "inner": self.inner.get_config(), "tile": self.tile, "halo": self.halo}

    @classmethod
    def from_config(cls, config: Dict[str, Any]) -> "TiledCodec":
        cfg = dict(config)
        if cfg.pop("id", cls.codec_id) != cls.codec_id:
            raise CodecError(f"config is not for {cls.codec_id!r}")
        return cls(inner=cfg.get("inner", "zstd"), tile=cfg.get("tile"), halo=cfg.get("halo"))

    @property
    def label(self) -> str:
        return f"{self.inner.label} tiled"

    def plan(self, shape: Sequence[int]) -> Tuple[Tuple[int, ...], Tuple[int, ...], List[Tile]]:
        """Tile size, halo and tiles this codec uses for ``shape``."""
        nd = len(shape)
        tile = as_axes(self.tile, nd, "tile") if self.tile is not None else default_tile(self.inner, nd)
        if self.tile is not None and len(self.tile) == 1:
            tile = (self.tile[0],) * nd
        halo = (as_axes(self.halo if len(self.halo) != 1 else self.halo * nd, nd, "halo")
                if self.halo is not None else default_halo(self.inner, nd))
        if self.halo is not None and any(h > t for h, t in zip(halo, tile)):
            # (t + 2h) coded per axis for t kept: a halo over the core is a typo, not a seam strategy
            raise CodecError(f"halo {list(halo)} is larger than the tile core {list(tile)} on some axis; "
                             "each tile would code several times its core: use a halo no larger than the tile")
        return tile, halo, tile_grid(shape, tile, halo)

    def encode_tiles(self, volume) -> Tuple[container.Header, Iterator[Tuple[Tile, bytes]]]:
        """The header (payload table still empty) and a lazy iterator of (tile, stream): one tile in memory."""
        shape, dtype = _check_volume(volume)
        tile, halo, tiles = self.plan(shape)
        off, wide = _volume_offset(volume, tiles)
        if wide:
            dtype = np.dtype(np.float32)
        # tiles hold the coded type; the volume's own (int32, float64, ...) and offset are recorded once
        meta = {"tiles": _tiles_meta(shape, tile, halo),
                **with_source_dtype(volume, np.empty(0, dtype), offset=off)}
        header = container.Header(codec=self.get_config(), shape=list(shape), dtype=dtype.name, layout="tiles",
                                  meta=meta)

        def streams() -> Iterator[Tuple[Tile, bytes]]:
            for k, t in enumerate(tiles):
                checkpoint("encode", k, len(tiles), f"tile {k + 1}/{len(tiles)}")
                block = check_image(_read(volume, t.outer), offset=off, as_float=wide)
                if block.dtype != dtype:   # e.g. an int64 tile whose values need float: never write a mixed file
                    raise InputError(f"tile {k + 1} converts to {block.dtype}, the others to {dtype}")
                yield t, self.inner.encode(block)

        return header, streams()

    def _encode(self, a: np.ndarray, header: container.Header) -> List[bytes]:
        h, streams = self.encode_tiles(a)
        header.codec, header.layout, header.meta = h.codec, h.layout, {**header.meta, **h.meta}
        header.dtype = h.dtype
        return [s for _, s in streams]

    def decode_tile(self, tile: Tile, data: bytes, header: container.Header) -> np.ndarray:
        """Decode one tile stream and return its core.

        Each tile decodes with the configuration recorded in its own stream (threads, weights id,
        normalisation), not the outer one: a tile coded on another machine keeps what it was coded with.
        """
        th, _ = container.read_header(data)
        if th.codec_id != self.inner.codec_id:
            raise StreamError(f"a tile was written by {th.codec_id!r} inside a {self.inner.codec_id!r} tiled stream")
        block = decode_any(data)
        want = tuple(b - a for a, b in tile.outer)
        if block.shape != want or block.dtype.name != header.dtype:
            raise StreamError(f"tile decoded as {block.dtype}{block.shape}, expected {header.dtype}{want}")
        return block[tile.core_in_outer()]

    def _decode(self, header: container.Header, payloads: List[bytes]) -> np.ndarray:
        if header.layout != "tiles":
            raise StreamError(f"tiled stream with layout {header.layout!r}")
        out = np.empty(header.shape, dtype=header.dtype)
        for k, (t, p) in enumerate(zip(_tiles_from_header(header), payloads)):
            checkpoint("decode", k, len(payloads), f"tile {k + 1}/{len(payloads)}")
            out[t.slices("core")] = self.decode_tile(t, p, header)
        return out
