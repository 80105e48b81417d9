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


def _signed(seed=2):
    return (smooth_image((40, 48), np.uint16, seed=seed, bits=12).astype(np.int32) - 2000).astype(np.int16)


def test_signed_values_are_coded_with_an_offset_and_come_back_exactly():
    a = _signed()
    assert a.min() < 0 < a.max()
    for codec in ("zstd", "jpegxl-lossless"):
        data = get_codec(codec).encode(a)
        assert container.unpack(data)[0].meta["int_offset"] == int(a.min())
        out = decode(data)
        assert out.dtype == np.int16
        np.testing.assert_array_equal(out, a)
    # lossy: metrics compare like with like (before: the int16 reconstruction was cast to uint16, wrapping)
    res = compress_array(a, "jpeg2k", quality=6)
    err = np.abs(res.reconstruction.astype(np.int32) - a)
    mse = float(np.mean(err.astype(np.float64) ** 2))
    assert res.reconstruction.dtype == np.int16 and err.max() < 200
    assert res.metrics["mse"] == pytest.approx(mse, rel=1e-6)
    hit = compress_array(a, "jpeg2k", target="psnr=45")
    assert hit.target["met"] and hit.metrics["psnr"] >= 45
    # the extremes of the wider types: int64 near its minimum, uint64 near its maximum
    lo = np.full((16, 16), np.iinfo(np.int64).min + 5, np.int64)
    lo[::3] += 60000
    hi = np.full((16, 16), np.iinfo(np.uint64).max - 3, np.uint64)
    hi[::2] -= np.uint64(65000)
    for v in (lo, hi):
        np.testing.assert_array_equal(decode(get_codec("zstd").encode(v)), v)


def test_a_lossy_overshoot_is_clipped_to_the_source_type_not_wrapped():
    a = np.full((32, 32), 127, np.int8)
    a[::2, ::2] = -128
    data = get_codec("zstd").encode(a)
    header, payloads = container.unpack(data)
    coded = decode(data).astype(np.int32) - header.meta["int_offset"]
    # a decoder returning a value one past int8's range must give 127 (or -128), never a wrapped sign
    from napari_microcomp._validate import restore_dtype
    over = coded.astype(np.uint16)
    over[0, 1] += 1
    out = restore_dtype(over, header.meta)
    assert out.dtype == np.int8 and out[0, 1] == 127 and out[0, 0] == -128


def test_a_forged_integer_offset_is_refused():
    data = get_codec("zstd").encode(_signed())
    header, payloads = container.unpack(data)
    for bad in (40000, 1.5, True, "-3"):       # outside int16, not an integer
        header.meta["int_offset"] = bad
        with pytest.raises(StreamError, match="offset"):
            decode(container.pack(header, payloads))
    f = get_codec("zstd").encode(smooth_image((40, 48), np.float32, seed=1).astype(np.float64))
    header, payloads = container.unpack(f)
    header.meta["int_offset"] = -7                # floats are never offset
    with pytest.raises(StreamError, match="offset"):
        decode(container.pack(header, payloads))


def _wide():
    """Integer images spanning more than 65,536 levels (a photon-counting sum, a background-subtracted
    x10 image), at the extremes of their types too."""
    f = smooth_image((40, 48), np.float32, seed=5)
    f = (f - f.min()) / (f.max() - f.min())
    return {"uint32": (f * 900_000).astype(np.uint32),
            "int32": (f * 300_000 - 150_000).astype(np.int32),
            "uint64": np.iinfo(np.uint64).max - np.uint64(2_000_000) + (f * 1_000_000).astype(np.uint64),
            "int64": np.iinfo(np.int64).min + 7 + (f * 5_000_000).astype(np.int64)}


@pytest.mark.parametrize("name", ["uint32", "int32", "uint64", "int64"])
def test_wide_integer_ranges_are_coded_exactly_as_float32(name):
    a = _wide()[name]
    assert int(a.max()) - int(a.min()) > 65535
    for codec in (get_codec("zstd"), get_codec("lerc", lossless=True)):
        data = codec.encode(a)
        meta = container.unpack(data)[0].meta
        assert meta["int_as_float"] is True and meta["source_dtype"] == name
        out = decode(data)
        assert out.dtype == a.dtype
        np.testing.assert_array_equal(out, a)
    res = compress_array(a, "jpeg2k", quality=5)
    assert res.reconstruction.dtype == a.dtype
    err = res.reconstruction.astype(np.int64) - a.astype(np.int64) if name != "uint64" else \
        (res.reconstruction - a).view(np.int64)   # modular difference, read signed: exact near 2**64
    assert res.metrics["mse"] == pytest.approx(float(np.mean(err.astype(np.float64) ** 2)), rel=1e-4)
    assert 30 < res.metrics["psnr"] < 80


def test_integer_ranges_beyond_float32_are_refused_and_lossless_codecs_without_floats_say_why():
    with pytest.raises(InputError, match="more than 2\\*\\*24"):
        get_codec("zstd").encode(np.array([[-2 ** 24, 2 ** 24 + 1]] * 32, np.int64).reshape(8, 8))
    with pytest.raises(Exception, match="spanning more than 65,536 levels are coded as float32"):
        get_codec("jpegxl-lossless").encode(_wide()["uint32"])


def test_a_forged_wide_integer_flag_is_refused():
    data = get_codec("zstd").encode(_wide()["int32"])
    header, payloads = container.unpack(data)
    header.meta["int_as_float"] = 1                 # not a boolean
    with pytest.raises(StreamError, match="offset"):
        decode(container.pack(header, payloads))
    narrow = get_codec("zstd").encode(_signed())     # coded as uint16: the flag cannot apply
    header, payloads = container.unpack(narrow)
    header.meta["int_as_float"] = True
    with pytest.raises(StreamError, match="offset"):
        decode(container.pack(header, payloads))


def test_saving_a_wide_integer_layer_falls_back_to_a_lossless_float_codec():
    from napari_microcomp._writer import encode_lossless

    a = _wide()["int32"]
    data = encode_lossless(a, {})
    assert container.unpack(data)[0].codec["id"] in ("zstd", "lerc")   # JPEG XL cannot; the next one that can
    out = decode(data)
    assert out.dtype == np.int32
    np.testing.assert_array_equal(out, a)
