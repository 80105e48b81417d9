"""Pixel types microcomp codes as uint16/float32 come back as themselves (int64 in, int64 out), and a
lossless codec refuses float64 values it would round."""
import numpy as np
import pytest

from helpers import smooth_image
from napari_microcomp import container
from napari_microcomp.api import compress_array
from napari_microcomp.codecs import decode, get_codec
from napari_microcomp.errors import InputError, StreamError


@pytest.mark.parametrize("dtype", ["int16", "int32", "int64", "uint32", "uint64", ">u2"])
def test_integer_types_round_trip_losslessly_as_themselves(dtype):
    a = smooth_image((40, 48), np.uint16, seed=1, bits=12).astype(dtype)
    for codec in ("zstd", "jpegxl-lossless"):
        out = decode(get_codec(codec).encode(a))
        assert out.dtype == np.dtype(dtype).newbyteorder("=")
        np.testing.assert_array_equal(out, a)
    res = compress_array(a, "jpeg2k", quality=4)
    assert res.reconstruction.dtype == np.dtype(dtype).newbyteorder("=") and res.metrics["psnr"] > 20


def test_float64_lossless_only_when_exact_and_lossy_keeps_the_type():
    exact = smooth_image((40, 48), np.float32, seed=2).astype(np.float64)
    out = decode(get_codec("zstd").encode(exact))
    assert out.dtype == np.float64
    np.testing.assert_array_equal(out, exact)
    rounded = exact / 3.0   # not float32 numbers any more
    with pytest.raises(InputError, match="lossless coding would change them"):
        get_codec("zstd").encode(rounded)
    res = compress_array(rounded, "jpegxl", quality=6)
    assert res.reconstruction.dtype == np.float64
    half = smooth_image((40, 48), np.float32, seed=3).astype(np.float16)
    assert compress_array(half, "jpeg2k", quality=5).reconstruction.dtype == np.float16


def test_a_stream_naming_an_unknown_source_type_is_refused():
    data = get_codec("zstd").encode(smooth_image((40, 48), np.uint16, seed=4).astype(np.int32))
    header, payloads = container.unpack(data)
    assert header.meta["source_dtype"] == "int32"
    header.meta["source_dtype"] = "object"
    with pytest.raises(StreamError, match="source pixel type"):
        decode(container.pack(header, payloads))


def test_signed_values_outside_uint16_are_refused_with_the_exact_workaround():
    a = (smooth_image((40, 48), np.uint16, seed=2, bits=12).astype(np.int32) - 2000).astype(np.int16)
    with pytest.raises(InputError, match="subtract its minimum"):
        get_codec("zstd").encode(a)
    shifted = (a.astype(np.int32) - a.min()).astype(np.uint16)     # the workaround the message names
    np.testing.assert_array_equal(decode(get_codec("zstd").encode(shifted)).astype(np.int32) + a.min(), a)
    with pytest.raises(InputError, match="do not fit uint16") as exc:   # a range no offset can fix: no hint
        get_codec("zstd").encode(np.array([[-70000, 0]] * 8 * 4, np.int32).reshape(8, 8))
    assert "subtract" not in str(exc.value)
