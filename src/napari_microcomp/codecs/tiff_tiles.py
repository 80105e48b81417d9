"""The study's way of running classical codecs: a TIFF file of 16×16 tiles, one ``level=8`` for all.

The study's reference code wrote each image with ``tifffile.imwrite(..., bigtiff=True,
photometric="minisblack", tile=(16, 16), compression=C, compressionargs={"level": 8})`` for
C in JPEG XR, JPEG 2000 and LERC, and measured the file. This codec does exactly that (the TIFF
file is the container's payload, so the stream is the file plus a ~300-byte header), so that the
``paper`` preset reproduces why the study's classical numbers were so low: 16×16 tiles leave no
room for a wavelet/transform to work, and ``level=8`` is passed as is to codecs that read it
differently (JPEG 2000: a PSNR target of 8 dB; LERC: a maximum error of 8).
Use the whole-image codecs (``jpeg2k``, ``jpegxr``, ``lerc``, ...) for real work.
"""
import io
from typing import Sequence

import numpy as np

from .base import SliceCodec
from ..codestreams import j2k_dims, jxr_dims, lerc_dims
from .registry import register_codec
from ..errors import CodecError

# tifffile's names for the study's three codecs.
COMPRESSIONS = {"jpegxr": "JPEGXR", "jpeg2000": "JPEG2000", "lerc": "LERC"}
PAPER_LEVEL = 8
PAPER_TILE = 16


@register_codec
class TiffTiles(SliceCodec):
    codec_id = "tiff-tiles"
    family = "classical"
    wrapper = True
    description = "the study's TIFF with 16×16 tiles (JPEG XR / JPEG 2000 / LERC), for reproduction only"
    native_param = "level"
    native_meaning = "tifffile compression level, passed as is (the study used 8 for every codec)"
    # The study used one level whatever the quality; the table only keeps quality meaningful.
    quality_table = {q: PAPER_LEVEL for q in range(1, 9)}

    @classmethod
    def extra_params(cls) -> Sequence[str]:
        return ("compression", "tile")

    def __init__(self, quality=None, lossless=False, **native):
        super().__init__(quality=quality, lossless=lossless, **native)
        comp = self.params.get("compression", "jpeg2000")
        if comp not in COMPRESSIONS:
            raise CodecError(f"tiff-tiles: compression must be one of {sorted(COMPRESSIONS)}, got {comp!r}")
        tile = int(self.params.get("tile", PAPER_TILE))
        if tile < 16 or tile % 16:
            raise CodecError(f"tiff-tiles: tile must be a multiple of 16, got {tile}")
        self.params.update(compression=comp, tile=tile)

    @property
    def label(self) -> str:
        return f"{self.params['compression']} (TIFF {self.params['tile']}² tiles, level {self.native_value()})"

    def _encode_2d(self, a: np.ndarray, header) -> bytes:
        import tifffile

        if a.dtype == np.float32 and self.params["compression"] != "lerc":
            raise CodecError("tiff-tiles: only LERC takes float32 in the study's TIFF setting")
        buf = io.BytesIO()
        tile = self.params["tile"]
        tifffile.imwrite(buf, a, bigtiff=True, photometric="minisblack", tile=(tile, tile),
                         compression=COMPRESSIONS[self.params["compression"]],
                         compressionargs={"level": self.native_value()}, metadata={"axes": "YX"})
        return buf.getvalue()

    def _decode_2d(self, data: bytes, header, shape) -> np.ndarray:
        import tifffile

        with tifffile.TiffFile(io.BytesIO(data)) as tif:
            self._check_tiles(tif, bytes(data), tuple(shape))
            out = tif.pages[0].asarray()
        if out.shape != tuple(shape):
            raise ValueError(f"TIFF decoded to {out.shape}, expected {tuple(shape)}")
        return out.astype(header.dtype, copy=False)

    def _check_tiles(self, tif, data: bytes, shape) -> None:
        """Before tifffile decodes: one tiled page of the promised size and compression, and every tile's own
        codestream declaring one tile (jxrlib allocated a crafted tile's declared 20000² before tifffile refused it)."""
        tile, comp = self.params["tile"], self.params["compression"]
        page = tif.pages[0] if len(tif.pages) == 1 else None
        if page is None or page.shape != shape or not page.is_tiled \
                or (page.tilelength, page.tilewidth) != (tile, tile) or page.compression.name != COMPRESSIONS[comp]:
            raise ValueError(f"the TIFF is not one {shape} page of {tile}² {COMPRESSIONS[comp]} tiles")
        for off, n in zip(page.dataoffsets, page.databytecounts):
            dims = _TILE_DIMS[comp](data[off:off + min(n, 4096)])
            if tuple(dims) != (tile, tile):
                raise ValueError(f"a tile's codestream declares {dims[0]}×{dims[1]}, not {tile}×{tile}")


_TILE_DIMS = {"jpegxr": jxr_dims, "jpeg2000": j2k_dims, "lerc": lerc_dims}


def paper_configs() -> list:
    """The study's three classical methods as codec configs."""
    return [TiffTiles(compression=c, level=PAPER_LEVEL).get_config() for c in ("jpegxr", "jpeg2000", "lerc")]


__all__ = ["TiffTiles", "paper_configs", "COMPRESSIONS"]
