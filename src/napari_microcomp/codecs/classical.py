"""Classical codecs through imagecodecs, on whole images (not the study's 16×16 TIFF tiles).

Quality 1..8 maps to each codec's native parameter (``quality_table``; see docs/codecs.md):

========  ==========================  =========================================================
codec     native parameter            1 → 8
========  ==========================  =========================================================
jpeg2k    ``level``: target PSNR (dB)  34 38 42 46 50 55 60 70, against the image's range (stretched)
htj2k     ``level``: quantisation step 0.1 … 0.0005 (relative to full range)
jpegxr    ``level``: quality 0–1       0.02 0.05 0.1 0.2 0.3 0.45 0.6 0.8 (0 and 1 are lossless)
jpegxl    ``distance`` (butteraugli)   12 8 5 3 2 1 0.5 0.2
lerc      ``max_error`` (absolute)     2^-5 … 2^-12 of the image range (exact bound)
jpegls    ``near`` (absolute, ≤ 255)   2^-8 … 2^-15 of the image range (exact bound)
========  ==========================  =========================================================

Value range: in lossy mode, JPEG 2000, HTJ2K, JPEG XR and JPEG XL get integer images stretched affinely
to the full uint16 range (offset/scale in the header; exactly invertible), so their quality levels are
relative to the image's own range, as LERC's and JPEG-LS's are; lossless modes code the data as it is. float32: LERC and zstd are native; the others get the image
mapped affinely to uint16 (offset/scale stored in the header; adds ≤ range/131070 error).
"""
import dataclasses
from typing import Any, Dict, List, Sequence

import numpy as np

from .. import container, slice_ranges
from ..strips import map_rows
from .._validate import used_bits
from ..errors import CodecError
from .base import SliceCodec
from .native import htj2k_decode
from ..codestreams import htj2k_dims, j2k_dims, jpegls_dims, jxl_dims, jxr_dims, lerc_dims, zstd_content_size
from .registry import register_codec

try:
    import imagecodecs as _ic
except ImportError:  # pragma: no cover - imagecodecs is a hard dependency; guard for odd builds
    _ic = None


def _has(name: str) -> bool:
    return _ic is not None and bool(getattr(getattr(_ic, name, None), "available", False))


def _fraction_table(first_exp: int) -> Dict[int, float]:
    return {q: 2.0 ** -(first_exp + q - 1) for q in range(1, 9)}


def _mapping(kind: str, lo: float, hi: float) -> Dict[str, float]:
    """Offset and scale of the uint16 working range for data in [lo, hi]."""
    if kind == "affine16":
        return {"offset": lo, "scale": (hi - lo) / 65535.0 if hi > lo else 1.0}
    lo, hi = int(lo), int(hi)   # integer data: the header keeps integers, as before slice ranges
    return {"offset": lo, "scale": 65535.0 / (hi - lo) if hi > lo else 1.0}


class ImagecodecsCodec(SliceCodec):
    """Shared logic: float mapping to uint16, bit depth, native parameter resolution."""

    imagecodecs_name: str = ""
    native_float: bool = False          # codec takes float32 itself
    takes_bits: bool = False            # codec takes bitspersample
    # Lossy integer data is stretched to the full uint16 range first (exactly invertible: every value keeps
    # its own code), so the quality scale means the same for a dim 8-bit-range image as for a 16-bit one.
    # Without it, uint16 data below 256 decoded to all zeros with jpeg2k q1–q5 (issue 11).
    stretch_int: bool = False
    relative_native: bool = False       # native value is a fraction of the image range

    @classmethod
    def available(cls) -> bool:
        return _has(cls.imagecodecs_name)

    extra_names: Sequence[str] = ()      # optional native keyword arguments besides native_param

    @classmethod
    def extra_params(cls) -> Sequence[str]:
        return cls.extra_names

    def __init__(self, quality=None, lossless: bool = False, **native: Any):
        super().__init__(quality=quality, lossless=lossless, **native)
        for k in self.extra_names:   # the native libraries raise TypeError/ValueError deep in the encoder
            v = self.params.get(k)
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, np.integer))):
                raise CodecError(f"{self.codec_id}: {k} must be an integer, got {v!r}")

    def _prepare(self, a: np.ndarray, header: container.Header) -> None:
        # lossy: a flash or saturated slice of a stack keeps its own range (slice_ranges)
        r = slice_ranges.one_range(a) if self.lossless else slice_ranges.split(a)
        lo, hi, odd = r.lo, r.hi, r.own
        kind = None
        if a.dtype == np.float32 and not self.native_float:
            if self.lossless:
                raise CodecError(f"{self.codec_id} cannot store floating-point pixels losslessly (integers spanning more "
                                 "than 65,536 levels are coded as float32); use lerc or zstd")
            kind = "affine16"
        elif self.stretch_int and not self.lossless and a.dtype.kind == "u":
            kind = "stretch16"   # a constant image becomes all zeros, coded exactly
        norm: Dict[str, Any] = {}
        if kind:
            norm = slice_ranges.record({"kind": kind, **_mapping(kind, lo, hi)},
                                       {i: _mapping(kind, *r) for i, r in odd.items()})
            if hi == lo and not odd:   # all zeros once mapped (lossy OpenJPEG made them 412s)
                header.meta["constant"] = True
        header.norm = norm
        work_dtype = np.uint16 if norm else a.dtype
        header.meta["bits"] = used_bits(a) if a.dtype != np.float32 and not norm else (16 if norm else 32)
        header.meta["work_dtype"] = np.dtype(work_dtype).name
        native = self._resolve_native(hi - lo)   # kept in the header, not on the instance: encodes may run concurrently
        if native is not None:
            header.meta["native"] = {self.native_param: native}

    def _slice_headers(self, header: container.Header, n: int) -> List[container.Header]:
        if "slices" not in header.norm:
            return [header] * n
        return [dataclasses.replace(header, norm=nm)
                for nm in slice_ranges.per_slice(header.norm, n, self.codec_id)]

    def _nat(self, header: container.Header) -> Any:
        """The native parameter resolved for this encode (see :meth:`_prepare`)."""
        return (header.meta.get("native") or {}).get(self.native_param)

    def _resolve_native(self, rng: float) -> Any:
        """The native parameter for data spanning ``rng``."""
        value = self.native_value()
        if value is None or not self.relative_native or (self.native_param in self.params):
            return value
        return value * (rng if rng > 0 else 1.0)

    def _to_work(self, a: np.ndarray, header: container.Header) -> np.ndarray:
        n = header.norm
        if n.get("kind") == "affine16":
            # float64: in float32, a - offset overflows for ranges near ±3.4e38 and every value clipped
            return map_rows(a, lambda b: np.clip(np.rint((b.astype(np.float64) - n["offset"]) / n["scale"]), 0, 65535),
                            np.uint16)
        if n.get("kind") == "stretch16":
            return map_rows(a, lambda b: np.clip(np.rint((b.astype(np.float64) - n["offset"]) * n["scale"]), 0, 65535),
                            np.uint16)
        return a

    def _from_work(self, w: np.ndarray, header: container.Header) -> np.ndarray:
        n = header.norm
        if n.get("kind") == "affine16":
            return map_rows(w, lambda b: b.astype(np.float64) * n["scale"] + n["offset"], np.float32)
        if n.get("kind") == "stretch16":
            if not (isinstance(n.get("scale"), (int, float)) and n["scale"] >= 1.0):
                raise ValueError(f"bad stretch scale {n.get('scale')!r}")
            top = np.iinfo(np.dtype(header.dtype)).max
            return map_rows(w, lambda b: np.clip(np.rint(b.astype(np.float64) / n["scale"] + n["offset"]), 0, top),
                            header.dtype)
        return w.astype(header.dtype, copy=False)

    def _kwargs(self, header: container.Header) -> Dict[str, Any]:
        kw = {}
        if self.takes_bits and header.meta.get("bits", 16) < 16:
            kw["bitspersample"] = header.meta["bits"]
        if "numthreads" in self.params:
            kw["numthreads"] = self.params["numthreads"]
        return kw

    def _encode_2d(self, a, header):
        return bytes(self._encode_work(self._to_work(a, header), header))

    def _peek_dims(self, data: bytes):
        """(rows, cols) the payload's own codestream declares, read without decoding; None if unknown."""
        return None

    def _decode_2d(self, data, header, shape):
        dims = self._peek_dims(bytes(data))   # whole: HTJ2K's tile-part lengths are checked against it
        if dims is not None and tuple(dims) != tuple(shape):
            # checked before the native decoder runs: it allocates what its codestream says
            raise ValueError(f"the payload's codestream declares {dims[0]}×{dims[1]}, the header {shape}")
        w = np.asarray(self._decode_work(data, header))
        if w.shape != shape:
            raise ValueError(f"slice decoded to {w.shape}, expected {shape}")
        return self._from_work(w, header)

    def _encode_work(self, w: np.ndarray, header) -> bytes:
        raise NotImplementedError

    def _decode_work(self, data: bytes, header) -> np.ndarray:
        return getattr(_ic, f"{self.imagecodecs_name.lower()}_decode")(data)


@register_codec
class JPEG2000(ImagecodecsCodec):
    _peek_dims = staticmethod(j2k_dims)
    codec_id = "jpeg2k"
    stretch_int = True
    description = "JPEG 2000 (OpenJPEG), whole image, single quality layer"
    imagecodecs_name = "JPEG2K"
    native_param = "level"
    search_range = (20.0, 100.0, False, True)
    native_meaning = "target PSNR in dB against the image's range (lossy input stretched to 16 bits)"
    quality_table = dict(zip(range(1, 9), (34, 38, 42, 46, 50, 55, 60, 70)))
    supports_lossless = True
    takes_bits = True
    extra_names = ("numthreads",)

    def _encode_work(self, w, header):
        # OpenJPEG's lossy mode turns an all-zero slice into 412s: those are coded reversibly (tiny anyway)
        exact = self.lossless or not w.any()
        return _ic.jpeg2k_encode(w, level=None if exact else self._nat(header), reversible=True if exact else None,
                                 **self._kwargs(header))


@register_codec
class HTJ2K(ImagecodecsCodec):
    _peek_dims = staticmethod(htj2k_dims)
    codec_id = "htj2k"
    stretch_int = True
    description = "High-throughput JPEG 2000 (OpenJPH)"
    imagecodecs_name = "HTJ2K"
    native_param = "level"
    search_range = (1e-5, 0.5, True, False)
    native_meaning = "quantisation step relative to the full range (smaller = better)"
    quality_table = dict(zip(range(1, 9), (0.1, 0.05, 0.02, 0.01, 0.005, 0.002, 0.001, 0.0005)))
    supports_lossless = True

    def _prepare(self, a, header):
        super()._prepare(a, header)
        # Lossy OpenJPH wraps saturated 16-bit values to ~0: dropping the LSB of full 16-bit data avoids it
        # (measured: saturated 65535 decoded as 0 before, ~65478 after). The decoder shifts back.
        if not self.lossless and header.meta["bits"] >= 16:
            header.norm = dict(header.norm, shift=1)

    def _encode_work(self, w, header):
        if self.lossless:
            return _ic.htj2k_encode(w, reversible=True)
        shift = header.norm.get("shift", 0)
        src = (w >> shift) if shift else w
        data = _ic.htj2k_encode(src, level=float(self._nat(header)))
        back = _ic.htj2k_decode(data)
        # Guard: refuse a stream whose reconstruction would be grossly wrong instead of returning it.
        span = float(src.max()) - float(src.min()) or 1.0
        if np.abs(np.subtract(back, src, dtype=np.int32)).max() > 0.5 * span:
            raise CodecError("htj2k produced a wrapped-around reconstruction on this image; "
                             "use jpeg2k or a higher quality")
        return data

    def _decode_work(self, data, header):
        w = htj2k_decode(data)
        shift = header.norm.get("shift", 0)
        if shift:  # lossy values may overshoot 15 bits: shift in int32 and clip to the type
            top = np.iinfo(np.dtype(header.meta["work_dtype"])).max
            w = np.clip(np.left_shift(w.astype(np.int32), shift), 0, top)
        return w.astype(header.meta["work_dtype"], copy=False)


@register_codec
class JPEGXR(ImagecodecsCodec):
    _peek_dims = staticmethod(jxr_dims)
    codec_id = "jpegxr"
    stretch_int = True
    description = "JPEG XR (jxrlib)"
    imagecodecs_name = "JPEGXR"
    native_param = "level"
    search_range = (0.005, 0.99, True, True)
    native_meaning = "quality 0–1 (0.0 and 1.0 are lossless in jxrlib)"
    quality_table = dict(zip(range(1, 9), (0.02, 0.05, 0.1, 0.2, 0.3, 0.45, 0.6, 0.8)))
    supports_lossless = True

    def _encode_work(self, w, header):
        return _ic.jpegxr_encode(w, level=1.0 if self.lossless else float(self._nat(header)))


@register_codec
class LERC(ImagecodecsCodec):
    _peek_dims = staticmethod(lerc_dims)
    codec_id = "lerc"
    description = "LERC (Esri), exact max-error bound; float32 native"
    imagecodecs_name = "LERC"
    native_param = "max_error"
    native_meaning = "maximum absolute error in data units (exact bound)"
    quality_table = _fraction_table(5)
    supports_lossless = True
    native_float = True
    relative_native = True

    def _encode_work(self, w, header):
        level = 0.0 if self.lossless else float(self._nat(header))
        if w.dtype.kind == "u" and level < 1.0:
            level = 0.0  # integer data: anything below 1 is lossless
        header.meta.setdefault("native", {})["max_error"] = level
        return _ic.lerc_encode(w, level=level)

    def _decode_work(self, data, header):
        return _ic.lerc_decode(data)


@register_codec
class JPEGXL(ImagecodecsCodec):
    _peek_dims = staticmethod(jxl_dims)
    codec_id = "jpegxl"
    stretch_int = True
    description = "JPEG XL (libjxl), VarDCT lossy or modular lossless"
    imagecodecs_name = "JPEGXL"
    native_param = "distance"
    search_range = (0.05, 25.0, True, False)
    native_meaning = "butteraugli distance (smaller = better; 1 ≈ visually lossless)"
    quality_table = dict(zip(range(1, 9), (12.0, 8.0, 5.0, 3.0, 2.0, 1.0, 0.5, 0.2)))
    supports_lossless = True
    takes_bits = True

    extra_names = ("effort", "numthreads")

    def _encode_work(self, w, header):
        kw = self._kwargs(header)
        if w.dtype == np.uint16 and kw.get("bitspersample", 16) <= 8:
            kw.pop("bitspersample")   # libjxl rejects 16-bit samples declared as 8-bit (uint16 data < 256)
        if "effort" in self.params:
            kw["effort"] = self.params["effort"]
        if self.lossless:
            return _ic.jpegxl_encode(w, lossless=True, **kw)
        return _ic.jpegxl_encode(w, distance=float(self._nat(header)), **kw)


@register_codec
class JPEGXLLossless(JPEGXL):
    codec_id = "jpegxl-lossless"
    family = "lossless"
    description = "JPEG XL modular mode, lossless"
    lossless_only = True


@register_codec
class JPEGLS(ImagecodecsCodec):
    _peek_dims = staticmethod(jpegls_dims)
    codec_id = "jpegls"
    description = "JPEG-LS (CharLS), lossless or near-lossless with an exact error bound"
    imagecodecs_name = "JPEGLS"
    native_param = "near"
    native_meaning = "NEAR: maximum absolute error in data units (0–255)"
    native_max = 255                    # CharLS's NEAR ceiling
    native_integer = True
    quality_table = _fraction_table(8)
    supports_lossless = True
    relative_native = True

    def _resolve_native(self, rng):
        v = super()._resolve_native(rng)
        return None if v is None else int(min(255, max(0, round(v))))

    def _encode_work(self, w, header):
        return _ic.jpegls_encode(w, level=0 if self.lossless else self._nat(header))

    def _decode_work(self, data, header):
        if bytes(data[-2:]) != b"\xff\xd9":   # CharLS spends ~7 s failing on a stream cut before its EOI
            raise ValueError("the JPEG-LS payload does not end with its EOI marker (truncated)")
        return _ic.jpegls_decode(data)


@register_codec
class Zstd(ImagecodecsCodec):
    codec_id = "zstd"
    family = "lossless"
    description = "Zstandard on the raw pixels with byte shuffling (lossless baseline)"
    imagecodecs_name = "ZSTD"
    lossless_only = True
    native_float = True

    extra_names = ("level",)

    def _encode_work(self, w, header):
        # Byte-plane shuffle lets zstd see the slowly varying high bytes of 16-bit data together.
        planes = w.view(np.uint8).reshape(w.shape + (w.itemsize,))
        shuffled = np.ascontiguousarray(np.moveaxis(planes, -1, 0))
        return _ic.zstd_encode(shuffled.tobytes(), level=int(self.params.get("level", 9)))

    def _decode_2d(self, data, header, shape):
        dt = np.dtype(header.meta["work_dtype"])
        want = dt.itemsize * int(np.prod(shape))
        if zstd_content_size(data) != want:   # before allocating the output (a 6 kB payload, 4 GB declared)
            raise ValueError(f"the zstd frame declares {zstd_content_size(data)} bytes, the header {want}")
        raw = bytearray(want)   # decode into the declared size: a zstd bomb fails instead of filling memory
        n = _ic.zstd_decode(data, out=raw)
        n = want if n is None or n is raw else len(n)
        if n != want:
            raise ValueError(f"zstd payload holds {n} bytes, expected {want}")
        planes = np.frombuffer(raw, np.uint8).reshape(dt.itemsize, -1)
        w = np.ascontiguousarray(planes.T).view(dt).reshape(shape)
        return self._from_work(w, header)
