"""One shared harness run over every registered classical/lossless codec, dtype and ndim."""
import json

import numpy as np
import pytest

from helpers import smooth_image
from napari_microcomp import container
from napari_microcomp.codecs import available_codecs, codec_from_config, decode, get_codec
from napari_microcomp.errors import CodecError, StreamError

from napari_microcomp.codecs import classical as _classical_module
from napari_microcomp.codecs import codec_class

# every codec the classical module registers (wrappers such as tiling have their own tests)
CLASSICAL = [n for n in available_codecs("classical") + available_codecs("lossless")
             if codec_class(n).__module__ == _classical_module.__name__]
CASES = [((48, 40), np.uint16), ((48, 40), np.uint8), ((48, 40), np.float32), ((3, 40, 36), np.uint16),
         ((3, 40, 36), np.uint8)]


def test_at_least_seven_classical_codecs():
    assert len(CLASSICAL) >= 7, CLASSICAL
    for name in ("jpeg2k", "jpegxr", "lerc", "jpegxl", "htj2k", "jpegls", "zstd"):
        assert name in CLASSICAL


@pytest.mark.parametrize("name", CLASSICAL)
@pytest.mark.parametrize("shape,dtype", CASES)
def test_round_trip_shape_dtype_and_error_bound(name, shape, dtype):
    a = smooth_image(shape, dtype)
    a_copy = a.copy()
    codec = get_codec(name, quality=6) if not codec_lossless_only(name) else get_codec(name)
    if dtype == np.float32 and codec.lossless and not getattr(codec, "native_float", False):
        with pytest.raises(CodecError, match="losslessly"):
            codec.encode(a)
        return
    data = codec.encode(a)
    out = decode(data)
    assert out.shape == a.shape and out.dtype == a.dtype
    np.testing.assert_array_equal(a, a_copy)  # input untouched
    span = float(a.max()) - float(a.min())
    err = np.abs(out.astype(np.float64) - a.astype(np.float64)).max()
    assert err <= 0.2 * span, (name, err, span)   # lossy, but never garbage
    assert codec.decode(data).shape == a.shape


def codec_lossless_only(name):
    from napari_microcomp.codecs import codec_class
    return codec_class(name).lossless_only


@pytest.mark.parametrize("name", CLASSICAL)
def test_config_json_round_trip_and_repr(name):
    c = get_codec(name) if codec_lossless_only(name) else get_codec(name, quality=3)
    cfg = json.loads(json.dumps(c.get_config()))
    c2 = codec_from_config(cfg)
    assert c2 == c and c2.get_config() == cfg
    assert name.replace("-", "") in repr(c).lower().replace("-", "") or type(c).__name__ in repr(c)
    assert "quality" in repr(c) or "lossless" in repr(c)


@pytest.mark.parametrize("name", CLASSICAL)
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_lossless_is_exact(name, dtype):
    a = smooth_image((3, 33, 47), dtype, seed=3)
    c = get_codec(name) if codec_lossless_only(name) else get_codec(name, lossless=True)
    np.testing.assert_array_equal(decode(c.encode(a)), a)


@pytest.mark.parametrize("level", [1.0, 7.0, 40.0, 300.0])
def test_lerc_max_error_equals_level(level):
    a = smooth_image((64, 64), np.uint16, seed=5)
    c = get_codec("lerc", max_error=level)
    err = np.abs(decode(c.encode(a)).astype(np.int64) - a).max()
    assert err <= level
    assert err >= 0.5 * level  # the bound is used, not an unrelated setting


def test_lerc_float_native_and_bound():
    a = smooth_image((40, 40), np.float32)
    out = decode(get_codec("lerc", max_error=0.5).encode(a))
    assert out.dtype == np.float32 and np.abs(out - a).max() <= 0.5 + 1e-6


@pytest.mark.parametrize("near", [1, 5, 50])
def test_jpegls_near_bound(near):
    a = smooth_image((64, 64), np.uint16, seed=7)
    err = np.abs(decode(get_codec("jpegls", near=near).encode(a)).astype(np.int64) - a).max()
    assert err <= near


def test_quality_is_monotone_in_size():
    a = smooth_image((96, 96), np.uint16, seed=9)
    for name in ("jpeg2k", "jpegxl", "jpegxr", "lerc", "jpegls", "htj2k"):
        sizes = [len(get_codec(name, quality=q).encode(a)) for q in (1, 4, 8)]
        assert sizes[0] <= sizes[1] <= sizes[2], (name, sizes)


def test_12bit_content_is_detected_and_declared():
    a = smooth_image((64, 64), np.uint16, bits=12)
    hdr, _ = container.read_header(get_codec("jpeg2k", lossless=True).encode(a))
    assert hdr.meta["bits"] == 12
    assert a.max() <= 4095
    # lossy: stretched to the full range (exactly invertible), so the level is relative to the image's range
    hdr, _ = container.read_header(get_codec("jpeg2k", quality=5).encode(a))
    assert hdr.norm["kind"] == "stretch16" and hdr.norm["offset"] == int(a.min())
    assert hdr.norm["scale"] == pytest.approx(65535 / (int(a.max()) - int(a.min())))


def test_float_mapping_stored_in_header():
    a = smooth_image((64, 64), np.float32)
    data = get_codec("jpegxl", quality=7).encode(a)
    hdr, _ = container.read_header(data)
    assert hdr.norm["kind"] == "affine16"
    out = decode(data)
    assert out.dtype == np.float32 and abs(float(out.mean()) - float(a.mean())) < 0.01 * float(np.ptp(a))


def test_float_lossless_only_where_possible():
    with pytest.raises(CodecError, match="floating-point pixels losslessly"):
        get_codec("jpegxl", lossless=True).encode(smooth_image((32, 32), np.float32))
    a = smooth_image((32, 32), np.float32)
    np.testing.assert_array_equal(decode(get_codec("zstd").encode(a)), a)


def test_htj2k_saturated_pixels_do_not_wrap():
    a = smooth_image((128, 128), np.uint16, seed=11)
    a[10:30, 10:30] = 65535
    out = decode(get_codec("htj2k", quality=4).encode(a))
    assert out[10:30, 10:30].min() > 60000


def test_slicewise_layout_for_3d():
    a = smooth_image((4, 32, 32), np.uint16)
    hdr, _ = container.read_header(get_codec("jpegxl", quality=4).encode(a))
    assert hdr.layout == "slicewise" and len(hdr.payloads) == 4


def test_bad_parameters():
    with pytest.raises(CodecError, match="unknown codec"):
        get_codec("nope")
    for said, meant in (("jpeg2000", "jpeg2k"), ("JPEG-XL", "jpegxl"), ("jpeg_xr", "jpegxr"), ("lercc", "lerc")):
        with pytest.raises(CodecError, match=f"Did you mean {meant}"):   # what people call them: a hint
            get_codec(said)
    with pytest.raises(CodecError, match="quality"):
        get_codec("jpegxl", quality=0)
    with pytest.raises(CodecError, match="quality"):
        get_codec("jpegxl", quality=2.5)
    with pytest.raises(CodecError, match="unknown parameter"):
        get_codec("jpeg2k", distance=1)
    with pytest.raises(CodecError, match="no lossless"):
        from napari_microcomp.codecs.base import SliceCodec

        class Lossy(SliceCodec):
            codec_id = "test-lossy"

            def _encode_2d(self, a, h):
                return b""

            def _decode_2d(self, d, h, s):
                return None
        Lossy(lossless=True)


def test_decoding_with_the_wrong_codec_object_is_refused():
    data = get_codec("jpegxl", quality=3).encode(smooth_image((32, 32)))
    with pytest.raises(StreamError, match="written by 'jpegxl'"):
        get_codec("jpeg2k", quality=3).decode(data)
