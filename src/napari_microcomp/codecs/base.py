"""The one Codec interface every codec (classical, learned, volumetric) implements.

A codec turns a 2D (Y, X) or 3D (Z, Y, X) uint8/uint16/float32 array into a self-describing
container stream (see :mod:`napari_microcomp.container`) and back. Quality is one scale for all
codecs: 1 = smallest file ... 8 = best quality; each codec maps it to its native parameter
with ``quality_table``. Experts may pass the native parameter instead.
"""
import abc
import contextvars
import warnings
from typing import Any, ClassVar, Dict, List, Optional, Sequence, Tuple

import numpy as np

from .. import container, outliers, slice_ranges
from .._progress import checkpoint
from .._validate import as_array, check_image, label_like, real_number, restore_dtype, with_source_dtype
from ..errors import CodecError, DecodeDriftWarning, InputError, MicrocompError, StreamError
from ..memory import BYTES_PER_PIXEL, check_working_memory

QUALITIES = tuple(range(1, 9))
# False only inside ``decode(..., verify=False)`` (nested streams included): data rescue, see registry.decode
VERIFY = contextvars.ContextVar("microcomp_verify", default=True)
DEFAULT_QUALITY = 4


def _labels_note(a: np.ndarray) -> Optional[str]:
    n = label_like(a)
    if n is None:
        return None
    return (f"the image looks like a label image or a mask ({n} values, constant within objects): lossy coding can "
            "change values at object borders (labels, areas and counts change); code it losslessly (--lossless, "
            "zstd or jpegxl-lossless)")


class Codec(abc.ABC):
    """Base class. Subclasses implement :meth:`_encode` and :meth:`_decode`."""

    codec_id: ClassVar[str] = ""
    family: ClassVar[str] = "classical"      # classical | lossless | learned | volumetric
    description: ClassVar[str] = ""
    native_param: ClassVar[Optional[str]] = None
    native_meaning: ClassVar[str] = ""
    quality_table: ClassVar[Dict[int, Any]] = {}
    supports_lossless: ClassVar[bool] = False
    lossless_only: ClassVar[bool] = False
    native_3d: ClassVar[bool] = False         # encodes a whole volume, not slices
    wrapper: ClassVar[bool] = False           # runs another codec in a container of its own (not a method)
    plane_work_bytes: ClassVar[float] = BYTES_PER_PIXEL   # working memory per pixel of a plane (memory.py)
    # rate control's axis for a continuous native parameter: (low, high, log scale, larger = better quality)
    search_range: ClassVar[Optional[Tuple[float, float, bool, bool]]] = None
    # checksum of the latent symbols the last ``_decode`` recovered (learned codecs; None: nothing to vouch for)
    decoded_symbols: Optional[int] = None

    def __init__(self, quality: Optional[int] = None, lossless: bool = False, **native: Any):
        unknown = set(native) - set(self.extra_params()) - ({self.native_param} - {None})
        if unknown:
            allowed = sorted({self.native_param, *self.extra_params()} - {None})
            raise CodecError(f"{self.codec_id}: unknown parameter(s) {sorted(unknown)}; "
                             f"allowed: {allowed or 'none'}")
        if not isinstance(lossless, (bool, np.bool_)):   # "no" or "false" is truthy: it coded losslessly
            raise CodecError(f"{self.codec_id}: lossless must be True or False, got {lossless!r}")
        if self.lossless_only:
            lossless = True
        if lossless and not (self.supports_lossless or self.lossless_only):
            raise CodecError(f"{self.codec_id} has no lossless mode")
        if quality is not None:   # checked even where lossless ignores it: a bad value is a caller's mistake
            if not real_number(quality) or int(quality) != quality or int(quality) not in QUALITIES:
                raise CodecError(f"quality must be an integer 1..8, got {quality!r}")
            quality = int(quality)
        if lossless:
            quality = None
        elif quality is None and (self.native_param is None or self.native_param not in native):
            quality = DEFAULT_QUALITY
        v = native.get(self.native_param) if self.native_param else None
        if v is not None and (not real_number(v) or v < 0):   # else a native library fails deep inside
            raise CodecError(f"{self.codec_id}: {self.native_param} must be a finite number ≥ 0, got {v!r}")
        self.quality = quality
        self.lossless = bool(lossless)
        self.params: Dict[str, Any] = dict(native)

    # -- configuration -------------------------------------------------------------------
    @classmethod
    def served_qualities(cls) -> List[int]:
        """The quality levels this codec can code with here (learned codecs: the levels with weights)."""
        return list(QUALITIES)

    @classmethod
    def extra_params(cls) -> Sequence[str]:
        """Names of optional native keyword arguments besides ``native_param``."""
        return ()

    @classmethod
    def available(cls) -> bool:
        return True

    def native_value(self) -> Any:
        """The native parameter in effect (explicit value, else the quality table)."""
        if self.native_param and self.native_param in self.params:
            return self.params[self.native_param]
        if self.lossless or self.quality is None:
            return None
        return self.quality_table.get(self.quality)

    def weights_note(self, a: np.ndarray) -> Optional[str]:
        """What the user should know about the weights used for ``a`` (learned codecs), else None."""
        return None

    def notes(self, a: np.ndarray, header: container.Header) -> List[str]:
        """What the user should know about coding ``a`` into the stream with ``header`` (API/CLI, napari, benchmark
        rows): the weights picked, hot pixels coded beside the image, slices with a range of their own."""
        found = (self.weights_note(a), outliers.note(header.meta.get("outliers")), slice_ranges.note(header.norm, a),
                 None if self.lossless or self.lossless_only else _labels_note(a))
        return [n for n in found if n]

    def get_config(self) -> Dict[str, Any]:
        cfg = {"id": self.codec_id, "quality": self.quality, "lossless": self.lossless}
        cfg.update(self.params)
        return cfg

    @classmethod
    def from_config(cls, config: Dict[str, Any]) -> "Codec":
        cfg = dict(config)
        cid = cfg.pop("id", cls.codec_id)
        if cid != cls.codec_id:
            raise CodecError(f"config is for {cid!r}, not {cls.codec_id!r}")
        return cls(**cfg)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items() if k != "id")
        return f"{type(self).__name__}({args})"

    def __eq__(self, other) -> bool:
        return type(self) is type(other) and self.get_config() == other.get_config()

    def __hash__(self):
        return hash(repr(self))

    @property
    def label(self) -> str:
        """Short human label, e.g. ``jpegxl q4`` or ``zstd lossless``."""
        if self.lossless:
            return f"{self.codec_id} lossless"
        if self.quality is not None:
            return f"{self.codec_id} q{self.quality}"
        return f"{self.codec_id} {self.native_param}={self.native_value()}"

    # -- encode / decode -------------------------------------------------------------------
    def encode(self, array, meta: Optional[Dict[str, Any]] = None) -> bytes:
        """Compress ``array``; return the complete container stream."""
        src = as_array(array)
        a = check_image(src)
        check_working_memory(a.shape, a.dtype, self.plane_work_bytes)
        if (self.lossless or self.lossless_only) and src.dtype.kind == "f" and src.dtype.itemsize > 4 \
                and not np.array_equal(a.astype(src.dtype), src):
            raise InputError(f"{self.codec_id}: these {src.dtype} values are not exactly float32 numbers, and "
                             "microcomp codes floats as float32, so lossless coding would change them; convert "
                             "to float32 yourself if that rounding is acceptable")
        header = container.Header(codec=self.get_config(), shape=list(a.shape), dtype=a.dtype.name,
                                  meta=with_source_dtype(src, a, meta))
        exc = None
        if not (self.lossless or self.lossless_only):
            a, exc = outliers.split(a)
        if exc is not None:
            header.meta["outliers"] = len(exc[0])
        token = outliers.CURRENT.set(exc)
        try:
            payloads = self._encode(a, header)
        finally:
            outliers.CURRENT.reset(token)
        return container.pack(header, payloads if exc is None else [*payloads, outliers.pack(exc)])

    def decode(self, data) -> np.ndarray:
        """Decompress a container stream written by this codec (or any codec: see ``codecs.decode``)."""
        header, payloads = container.unpack(data)
        if header.codec_id != self.codec_id:
            raise StreamError(f"stream was written by {header.codec_id!r}, not {self.codec_id!r}; "
                              "use napari_microcomp.codecs.decode() to decode any stream")
        # Decode with what the stream records (e.g. the weights an automatic choice picked, its thread
        # count) where this instance leaves a parameter open; what the instance sets explicitly wins.
        try:
            codec = type(self).from_config({**header.codec, **self.params})
        except (CodecError, TypeError, ValueError, OverflowError) as exc:
            raise StreamError(f"{self.codec_id}: the stream's codec parameters are invalid ({exc})") from exc
        return codec._decode_checked(header, payloads)

    def _decode_checked(self, header: container.Header, payloads: List[bytes]) -> np.ndarray:
        n_out = header.meta.get("outliers")
        if n_out is not None:
            if not payloads:
                raise StreamError(f"{self.codec_id}: the header lists outliers but the stream has no payload for them")
            payloads, extra = payloads[:-1], payloads[-1]
        try:
            out = self._decode(header, payloads)
        except MicrocompError:  # already a clear message (e.g. missing weights)
            raise
        except (MemoryError, KeyboardInterrupt):
            raise
        except Exception as exc:
            raise StreamError(f"{self.codec_id}: payload could not be decoded ({type(exc).__name__}: {exc})") from exc
        out = np.asarray(out)
        if list(out.shape) != header.shape or out.dtype.name != header.dtype:
            raise StreamError(f"{self.codec_id}: decoded {out.dtype}{list(out.shape)} but the header says "
                              f"{header.dtype}{header.shape}; refusing a wrong result")
        if n_out is not None:
            out = outliers.apply(out, outliers.unpack(extra, n_out, header.shape, header.dtype))
        expected = header.check.get("crc32")
        if expected is not None and container.array_crc32(out) != expected:
            symbols = header.check.get("symbols")
            if symbols is not None and self.decoded_symbols == symbols:
                # the entropy decoding, where a drift corrupts an image, was exact; only float rounding differs
                warnings.warn(DecodeDriftWarning(
                    f"{self.codec_id}: decoded from exactly the latents the encoder wrote (their checksum "
                    "matches), but this computer's floating-point arithmetic rounds the reconstruction "
                    "slightly differently from the one that wrote the stream (typically a few pixels one "
                    "unit off); decode on a computer of the writing type for a bit-exact copy"), stacklevel=2)
                return restore_dtype(out, header.meta)
            if VERIFY.get():
                raise StreamError(
                    f"{self.codec_id}: the reconstruction does not match the checksum recorded at encode time "
                    "(the stream is damaged, or was written on a computer whose decoder rounds differently); "
                    "refusing an unverified result. To rescue the data anyway: decode(data, verify=False) or "
                    "`microcomp decompress --no-verify`")
            warnings.warn(f"{self.codec_id}: the reconstruction does not match the encoder's checksum; returned "
                          "UNVERIFIED (verify=False)", stacklevel=2)
        return restore_dtype(out, header.meta)

    @abc.abstractmethod
    def _encode(self, a: np.ndarray, header: container.Header) -> List[bytes]:
        """Return payloads; may fill ``header.layout/norm/check/meta``."""

    @abc.abstractmethod
    def _decode(self, header: container.Header, payloads: List[bytes]) -> np.ndarray:
        """Invert :meth:`_encode`."""


class SliceCodec(Codec):
    """A 2D codec: 3D input is encoded slice by slice (layout ``slicewise``)."""

    def _encode(self, a, header):
        self._prepare(a, header)
        if a.ndim == 2:
            header.layout = "whole"
            payloads = [self._encode_2d(a, header)]
        else:
            header.layout = "slicewise"
            payloads = []
            for i, (s, h) in enumerate(zip(a, self._slice_headers(header, len(a)))):
                checkpoint("encode", i, len(a), f"{self.codec_id}: slice {i + 1}/{len(a)}")
                payloads.append(self._encode_2d(s, h))
        # The reconstruction's checksum, so a decoder that would return anything else refuses instead
        # (a damaged or edited header, a different library build). Lossy streams are decoded once here.
        rec = a if self.lossless else self._decode(header, payloads)
        header.check["crc32"] = container.array_crc32(outliers.with_current(np.asarray(rec)))
        return payloads

    def _decode(self, header, payloads):
        shape = header.shape
        if header.layout == "whole":
            if len(shape) != 2 or len(payloads) != 1:
                raise StreamError("whole-image stream with a bad payload count")
            return self._decode_2d(payloads[0], header, tuple(shape))
        if header.layout != "slicewise" or len(shape) != 3 or len(payloads) != shape[0]:
            raise StreamError(f"expected {shape[0] if len(shape) == 3 else '?'} slices, "
                              f"got {len(payloads)} payloads in layout {header.layout!r}")
        out = np.empty(shape, dtype=header.dtype)
        for i, (p, h) in enumerate(zip(payloads, self._slice_headers(header, len(payloads)))):
            checkpoint("decode", i, len(payloads), f"{self.codec_id}: slice {i + 1}/{len(payloads)}")
            out[i] = self._decode_2d(p, h, tuple(shape[1:]))
        return out

    def _prepare(self, a: np.ndarray, header: container.Header) -> None:
        """Hook to inspect the whole array once (bit depth, ranges) before slices are encoded."""

    def _slice_headers(self, header: container.Header, n: int) -> List[container.Header]:
        """The header each of ``n`` slices is coded with (a codec may give some slices their own range)."""
        return [header] * n

    @abc.abstractmethod
    def _encode_2d(self, a: np.ndarray, header: container.Header) -> bytes: ...

    @abc.abstractmethod
    def _decode_2d(self, data: bytes, header: container.Header, shape: Tuple[int, ...]) -> np.ndarray: ...
