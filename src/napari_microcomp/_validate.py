"""Checks on arrays before they reach a codec, with messages a user can act on."""
from typing import Any, Dict, Optional

import numpy as np

from .errors import InputError

SUPPORTED_DTYPES = (np.uint8, np.uint16, np.float32)


FLOAT_EXACT = 2 ** 24   # float32 holds every integer of magnitude up to this exactly


def int_offset(lo: int, hi: int, offset: Optional[int] = None) -> int:
    """What is subtracted from integer pixels (values ``lo``..``hi``) to code them as uint16: ``offset`` if
    given, else nothing when they fit and their minimum when not (exact for any data spanning at most 65,536
    levels, e.g. signed int16). InputError when the values do not fit 0..65535 after it."""
    off = (0 if lo >= 0 and hi <= 65535 else int(lo)) if offset is None else int(offset)
    if lo - off < 0 or hi - off > 65535:
        raise InputError(f"integer values {lo}..{hi} span more than 65,536 levels, so they cannot be coded "
                         "exactly as uint16 here; convert to float32 or rescale")
    return off


def wide_int_offset(lo: int, hi: int, offset: Optional[int] = None) -> int:
    """What is subtracted from integer pixels spanning more than 65,536 levels to code them, exactly, as
    float32: ``offset`` if given, else nothing when they lie within ±2**24 and their minimum when not."""
    off = (0 if -FLOAT_EXACT <= lo and hi <= FLOAT_EXACT else int(lo)) if offset is None else int(offset)
    if lo - off < -FLOAT_EXACT or hi - off > FLOAT_EXACT:
        raise InputError(f"integer values {lo}..{hi} span more than 2**24 (16,777,216) levels, so neither uint16 "
                         "nor float32 holds them exactly; rescale them (or convert to float32, rounding them)")
    return off


def pixel_type_error(dtype) -> InputError:
    """The refusal for pixels that are not numbers a codec can take (bool masks, strings, records, ...)."""
    dt = np.dtype(dtype)
    if dt == bool:
        return InputError("boolean pixels (a mask) are not supported; convert to uint8 first "
                          "(e.g. mask.astype(numpy.uint8))")
    return InputError(f"unsupported pixel type {dt}; expected integer or floating-point pixels")


MASK_NOTE = "holds a boolean (1-bit) mask; coding it as uint8 0/1"


def mask_as_uint8(a):
    """A boolean (1-bit) image as uint8 0/1, the nearest type a codec takes (lazy arrays stay lazy); None
    for any other image. The API refuses bool arrays (:func:`pixel_type_error`); readers and the napari
    docks, whose users cannot convert, use this and say so (:data:`MASK_NOTE`)."""
    return a.astype(np.uint8) if getattr(a, "dtype", None) == bool else None


def looks_like_colour(shape) -> bool:
    """(Y, X, 2..4): colour samples (RGB, RGBA, grey+alpha) last, not a stack of 2-4 planes."""
    return len(shape) == 3 and shape[-1] in (2, 3, 4) and min(shape[:2]) > 4


def grey_samples(a: np.ndarray) -> Optional[np.ndarray]:
    """The one channel of a grey image whose last axis holds 2–4 samples (RGB(A) or grey+alpha with equal
    colour samples and a constant alpha: a palette PNG, an ImageJ "RGB Color" save); None for real colour."""
    if a.ndim < 3 or not 2 <= a.shape[-1] <= 4:
        return None
    colour, alpha = (a[..., :3], a[..., 3]) if a.shape[-1] == 4 else \
        (a[..., :1], a[..., 1]) if a.shape[-1] == 2 else (a, None)
    first = colour[..., 0]
    if any(not np.array_equal(colour[..., k], first) for k in range(1, colour.shape[-1])) or \
            (alpha is not None and alpha.size and not (alpha == alpha.flat[0]).all()):
        return None
    return first


LABEL_SAMPLE_PX = 1 << 22   # pixels label_like looks at (whole rows, evenly spaced)


def label_like(a: np.ndarray) -> Optional[int]:
    """The number of values (in the rows looked at) of an integer image that looks like a label image or a mask
    (piecewise constant: at least 80 % of the pixels off the most common value equal their right neighbour), else
    None. Labels differ only at object borders (a disc of radius 4 px: 87 % equal); microscopy differs from pixel
    to pixel (at most 38 % over the 58 integer images of the shared data, 8- to 16-bit, bright-field and
    fluorescence). A noiseless smooth image has plateaus too, but one level apart: with more than two values,
    mostly unit steps are not labels."""
    if a.dtype not in (np.uint8, np.uint16) or a.shape[-1] < 2:
        return None
    rows = a.reshape(-1, a.shape[-1])
    keep = max(1, min(1024, LABEL_SAMPLE_PX // rows.shape[1]))
    if rows.shape[0] > keep:   # evenly spaced rows: its temporaries stay small on a 20000² image
        rows = rows[np.linspace(0, rows.shape[0] - 1, keep).astype(np.intp)]
    counts = np.bincount(rows.ravel())
    bg = int(np.argmax(counts))
    left, right = rows[:, :-1], rows[:, 1:]
    fg = left != bg
    n = int(fg.sum())
    if n < 64 or np.count_nonzero(left[fg] == right[fg]) < 0.8 * n:
        return None
    values = int(np.count_nonzero(counts))
    step = np.abs(left.astype(np.int32) - right)
    step = step[step > 0]
    if values > 2 and np.count_nonzero(step == 1) >= 0.5 * step.size:
        return None   # a smooth, noiseless image (plateaus one level apart), not objects on a background
    return values


def colour_error(shape, fix: str = "pick one channel (e.g. --channel 0) or convert to grayscale") -> InputError:
    return InputError(f"shape {tuple(shape)} looks like an RGB/RGBA or grey+alpha image; microcomp works on "
                      f"single-channel images: {fix}")


def as_array(array) -> np.ndarray:
    """``np.asarray(array)``, with an InputError for what numpy cannot make an array of (ragged nested lists)."""
    try:
        return np.asarray(array)
    except ValueError as exc:
        raise InputError(f"not an image: {str(exc).split('.')[0]} (e.g. nested lists of unequal lengths)") from exc


def check_image(array, *, allow_3d: bool = True, offset: Optional[int] = None,
                as_float: Optional[bool] = None) -> np.ndarray:
    """Return ``array`` as a C-contiguous numpy array of a supported dtype, or raise InputError.

    Accepts 2D (Y, X) and, when ``allow_3d``, 3D (Z, Y, X). float64 is converted to float32,
    other integer types to uint16 after subtracting ``offset`` (default: :func:`int_offset` of their
    range; the stream records it, see :func:`with_source_dtype`), or, when they span more than 65,536
    levels (``as_float`` None: decided by their range; without an ``offset`` only), to float32 after
    subtracting :func:`wide_int_offset`: exact either way.
    """
    if array is None:
        raise InputError("no image given")
    n_masked = int(np.ma.getmaskarray(array).sum()) if isinstance(array, np.ma.MaskedArray) else 0
    if n_masked:   # a stream has no place for the mask: coding the values beneath it would drop it silently
        raise InputError(f"the masked array has {n_masked} masked pixel(s), and a stream cannot store a mask; "
                         "fill them first (e.g. m.filled(0)) or pass m.data to code the values beneath the mask")
    a = as_array(array)
    if a.dtype.kind == "c":
        raise InputError(f"complex pixel values ({a.dtype}) are not supported; compress the magnitude "
                         "(numpy.abs) or the real and imaginary parts as separate images")
    if a.dtype == bool or a.dtype.kind in "OUSVMm":
        raise pixel_type_error(a.dtype)
    if a.size == 0:
        raise InputError(f"the image is empty (shape {a.shape})")
    if looks_like_colour(a.shape):
        raise colour_error(a.shape)
    sq = tuple(n for n in a.shape if n != 1)
    if (a.ndim > 3 or (a.ndim == 3 and a.shape[-1] == 1)) and len(sq) in ((2, 3) if allow_3d else (2,)):
        # (Y, X, 1) or (1, 1, Z, Y, X): unambiguous once squeezed, but the reconstruction keeps the input's shape
        raise InputError(f"shape {a.shape} has axes of length 1; drop them (numpy.squeeze) to code it as a "
                         f"{len(sq)}D image of shape {sq}")
    if a.ndim not in ((2, 3) if allow_3d else (2,)):
        want = "2D (Y, X) or 3D (Z, Y, X)" if allow_3d else "2D (Y, X)"
        # only more axes than an image has are fixed by picking a channel or time point
        fix = ("select one channel/time point first" if len(sq) > 1 else
               "a single value is not an image" if a.size == 1 else
               "a 1D signal is not an image (reshape it to (rows, columns) if it holds one)")
        raise InputError(f"expected a {want} single-channel image, got {a.ndim}D with shape {a.shape}; {fix}")
    if not a.dtype.isnative:   # big-endian from a file: some codecs would code the raw bytes
        a = a.astype(a.dtype.newbyteorder("="))
    if min(a.shape[-2:]) < 8:
        raise InputError(f"image too small: shape {a.shape} (need ≥ 8×8 in Y, X)")
    if a.dtype.kind == "f":
        if not np.isfinite(a).all():
            bad = int((~np.isfinite(a)).sum())
            raise InputError(f"the image contains {bad} NaN/Inf value(s); replace them first (e.g. numpy.nan_to_num)")
        big = float(np.abs(a).max())
        if big > float(np.finfo(np.float32).max):
            raise InputError(f"values up to {big:.3g} exceed the float32 range (±3.4e38); rescale the image first")
        a = _to_float32(a)
    elif a.dtype.kind in "iu" and a.dtype not in (np.uint8, np.uint16):
        lo, hi = int(a.min()), int(a.max())
        if as_float is None:
            as_float = offset is None and hi - lo > 65535
        if as_float:
            off = wide_int_offset(lo, hi, offset)
            if off:   # a - off lies within ±2**24: modular arithmetic in the source type, read as signed, is exact
                d = a - a.dtype.type(off)
                a = d.view(d.dtype.str.replace("u", "i")) if d.dtype.kind == "u" else d
            a = a.astype(np.float32)
        else:
            off = int_offset(lo, hi, offset)
            # modular uint16 arithmetic is exact here: every a - off lies in 0..65535 (no int64 copy needed)
            a = a.astype(np.uint16)
            if off:
                a -= np.uint16(off % 65536)
    return np.ascontiguousarray(a)


def _to_float32(a: np.ndarray) -> np.ndarray:
    """``a`` as float32, the type the codecs code; refused where the cast alone would change the image
    (values below float32's range flush to 0, a large offset swamps a small range)."""
    f = a.astype(np.float32, copy=False)
    if a.dtype == np.float32:
        return f
    lo, hi = float(a.min()), float(a.max())
    planes = zip(f, a) if a.ndim == 3 else [(f, a)]   # plane by plane: a float64 stack is not copied whole
    err = max(float(np.abs(fp.astype(np.float64) - ap).max()) for fp, ap in planes)
    # finer than the 16-bit levels lossy coding uses: invisible; coarser: the cast is the loss
    tol = (hi - lo) / 65536 if hi > lo else max(abs(lo), abs(hi)) * 1e-6
    if err > tol:
        raise InputError(f"converting {a.dtype} to float32 (the type microcomp works in) would change values by up to "
                         f"{err:.3g} (values {lo!r}..{hi!r}); subtract the offset or rescale the image first")
    return f


def real_number(v: Any) -> bool:
    """A finite real number (Python or numpy), not a bool: what every numeric codec parameter must be."""
    if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
        return False
    if isinstance(v, (int, np.integer)):
        return abs(int(v)) < 2 ** 1023   # a Python int beyond float64 has no place in any parameter
    return bool(np.isfinite(v))


# Pixel types that are coded as uint16/float32 and given back as themselves (the stream records them).
RESTORABLE = ("int8", "int16", "int32", "int64", "uint32", "uint64", "float16", "float64")


# Header meta keys the codecs write for their own decoding; a caller's values for them (say, meta copied
# from another stream's info) would steer the decoder, so they are dropped from user meta.
INTERNAL_META = frozenset({"source_dtype", "int_offset", "int_as_float", "constant", "work_dtype", "bits", "blocks",
                           "native", "tiles", "outliers", "dc"})


def _plain(key: str, v: Any) -> Any:
    """``v`` as JSON types (numpy scalars and paths converted), else InputError naming the key."""
    import os

    if v is None or isinstance(v, (bool, int, str)) or (isinstance(v, float) and np.isfinite(v)):
        return v
    if isinstance(v, np.generic) and v.dtype.kind in "biuf":
        return _plain(key, v.item())
    if isinstance(v, os.PathLike):
        return os.fspath(v)
    if isinstance(v, (list, tuple)):
        return [_plain(key, x) for x in v]
    if isinstance(v, dict) and all(isinstance(k, str) for k in v):
        return {k: _plain(f"{key}.{k}", x) for k, x in v.items()}
    raise InputError(f"meta[{key!r}] holds {type(v).__name__} {str(v)[:40]!r}; stream metadata takes strings, "
                     "finite numbers, booleans, None, and lists/dicts of them")


def with_source_dtype(source, coded: np.ndarray, meta: Optional[Dict[str, Any]] = None,
                      offset: Optional[int] = None) -> Dict[str, Any]:
    """The caller's ``meta`` as JSON values, without the codecs' own keys, plus ``source_dtype`` when
    ``check_image`` changed the pixel type of ``source`` into ``coded``'s: decoding then returns the
    caller's type (int64 in, int64 out), not the coded one; and ``int_offset``, the value it subtracted
    (``offset``, else read off the first pixel of ``source`` and ``coded``)."""
    if meta is not None and not (isinstance(meta, dict) and all(isinstance(k, str) for k in meta)):
        raise InputError(f"meta must be a dict with string keys, got {type(meta).__name__}")
    out = {k: _plain(k, v) for k, v in (meta or {}).items() if k not in INTERNAL_META}
    name = np.dtype(getattr(source, "dtype", coded.dtype)).newbyteorder("=").name
    if name != coded.dtype.name and name in RESTORABLE:
        out["source_dtype"] = name
        if np.dtype(name).kind in "iu":
            if coded.dtype.kind == "f":   # more than 65,536 levels, coded as float32 (check_image)
                out["int_as_float"] = True
            if offset is None:
                offset = int(np.asarray(source).flat[0]) - int(coded.flat[0])
            if offset:
                out["int_offset"] = int(offset)
    return out


def restore_dtype(out: np.ndarray, meta: Dict[str, Any]) -> np.ndarray:
    """The decoded array in the pixel type its stream records as the source's (if any)."""
    from .errors import StreamError

    name, off = meta.get("source_dtype"), meta.get("int_offset", 0)
    if name is None and not off:
        return out
    if name not in RESTORABLE:
        raise StreamError(f"the stream asks for source pixel type {name!r}, which is not one microcomp writes")
    dt = np.dtype(name)
    if dt.kind == "f":
        if off:
            raise StreamError(f"the stream records an integer offset for float source type {name}")
        if dt == np.float16:   # a lossy overshoot past float16's range would become inf
            out = np.clip(out, -65504, 65504)
        return out.astype(dt)
    info = np.iinfo(dt)
    wide = meta.get("int_as_float", False)
    if not isinstance(wide, bool) or out.dtype != (np.float32 if wide else np.uint16) or isinstance(off, bool) \
            or not isinstance(off, int) or not info.min <= off <= info.max:
        raise StreamError(f"the stream's integer offset {off!r} (coded as {out.dtype}) does not fit its source "
                          f"type {name}")
    # clip a lossy overshoot to what the source type holds; then modular arithmetic in that type is exact
    if wide:
        if not np.isfinite(out).all():
            raise StreamError(f"the stream decodes to non-finite values for integer source type {name}")
        lo, hi = max(-FLOAT_EXACT, info.min - off), min(FLOAT_EXACT, info.max - off)
        out = np.clip(np.rint(out.astype(np.float64)), lo, hi).astype(np.int64)
    else:
        lo, hi = max(0, info.min - off), min(65535, info.max - off)
    if out.size and (int(out.min()) < lo or int(out.max()) > hi):
        out = np.clip(out, lo, hi)
    r = out.astype(dt)   # int64 → unsigned wraps a negative value; adding the offset below unwraps it
    if off:
        r += dt.type(off)
    return r


def as_coded(decoded: np.ndarray, meta: Dict[str, Any]) -> np.ndarray:
    """A decoded image back in the type its stream (header ``meta``) coded, the inverse of
    :func:`restore_dtype`: what metrics compare with ``check_image``'s copy of the source."""
    return check_image(decoded, offset=meta.get("int_offset", 0), as_float=meta.get("int_as_float") is True)


def used_bits(a: np.ndarray) -> int:
    """Bit depth actually used by integer content (e.g. 12 for 12-bit data stored in uint16)."""
    if a.dtype == np.uint8:
        return 8
    if a.dtype != np.uint16:
        raise InputError(f"used_bits needs an integer image, got {a.dtype}")
    hi = int(a.max())
    return max(8, min(16, int(hi).bit_length()))
