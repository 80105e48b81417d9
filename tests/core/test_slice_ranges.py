"""A flash or saturated slice of a stack keeps its own range instead of stretching the others'."""
import numpy as np
import pytest

from helpers import smooth_image
from napari_microcomp import container, slice_ranges
from napari_microcomp.codecs import decode, get_codec
from napari_microcomp.errors import StreamError
from napari_microcomp.modality import detect_modality

KEEP = [0, 1, 3, 4]


def _stack(dtype=np.uint16):
    """Five 12-bit slices of one smooth scene, each with its own noise."""
    base = smooth_image((64, 80), np.float64, seed=1)
    r = np.random.default_rng(2)
    planes = [np.clip(base / base.max() * 3000 + 500 + r.normal(0, 20, base.shape), 0, 4095) for _ in range(5)]
    return np.stack(planes).astype(dtype)


def _bad(st, how):
    bad = st.copy()
    if how == "saturated":
        bad[2] = np.iinfo(st.dtype).max if st.dtype.kind == "u" else st.max() * 30
    else:   # a flash: the same scene 12x brighter
        bad[2] = np.clip(st[2].astype(np.float64) * 12, 0, 65535).astype(st.dtype)
    return bad


def test_which_slices_are_aberrant():
    st = _stack()
    assert slice_ranges.aberrant(st) == {}
    assert slice_ranges.aberrant(st[0]) == {}                  # 2D
    assert slice_ranges.aberrant(_bad(st, "flash")[1:3]) == {}      # too few slices to tell
    assert slice_ranges.aberrant(_bad(st, "saturated")[1:3]) == {1: (65535.0, 65535.0)}   # constant: always
    assert slice_ranges.aberrant(_bad(st, "saturated")) == {2: (65535.0, 65535.0)}
    assert set(slice_ranges.aberrant(_bad(st, "flash"))) == {2}
    assert slice_ranges.aberrant(np.zeros((4, 8, 8), np.uint16)) == {}   # all constant: nothing to single out
    bleached = st.copy()
    bleached[0] = bleached[0] * 4    # a time-lapse that starts four times brighter
    assert slice_ranges.aberrant(bleached) == {}
    # bright slices that are the stack's nature (3 in-focus planes of 11) share one range with the rest
    zs = np.concatenate([st, st, st])[:11].copy()
    zs[4:7] = np.clip(zs[4:7].astype(np.float64) * 12, 0, 65535).astype(np.uint16)
    assert slice_ranges.aberrant(zs) == {}


@pytest.mark.parametrize("codec", ["jpeg2k", "jpegxl", "htj2k", "lerc", "mbt2018-mean-vbr"])
@pytest.mark.parametrize("how", ["saturated", "flash"])
def test_the_other_slices_are_coded_as_without_it(codec, how):
    st = _stack()
    bad = _bad(st, how)
    clean_rec = decode(get_codec(codec, quality=4).encode(st))
    data = get_codec(codec, quality=4).encode(bad)
    rec = decode(data)
    np.testing.assert_array_equal(rec[KEEP], clean_rec[KEEP])
    if how == "saturated":
        np.testing.assert_array_equal(rec[2], bad[2])
    else:   # coded at the quality its own range asks for: the same relative error as the scene unflashed
        def rel(r, ref):
            return np.abs(r.astype(np.float64) - ref).mean() / (float(ref.max()) - float(ref.min()))
        assert rel(rec[2], bad[2]) < 1.1 * rel(clean_rec[2], st) + 1e-3
    assert len(container.read_header(data)[0].norm.get("slices", [])) == (1 if codec != "lerc" else 0)


def test_float_stacks_and_the_3d_model():
    st = _stack(np.float32) / 7
    bad = _bad(st, "saturated")
    rec = decode(get_codec("jpeg2k", quality=4).encode(bad))
    np.testing.assert_array_equal(rec[KEEP], decode(get_codec("jpeg2k", quality=4).encode(st))[KEEP])
    np.testing.assert_array_equal(rec[2], bad[2])

    st = _stack()
    bad = _bad(st, "saturated")

    def psnr(rec):
        err = rec[KEEP].astype(np.float64) - st[KEEP]
        return 10 * np.log10((float(st.max()) - float(st.min())) ** 2 / np.mean(err ** 2))

    codec = get_codec("mbt2018-mean-vbr3d", quality=4)
    clean_data, bad_data = codec.encode(st), codec.encode(bad)
    rec = decode(bad_data)
    np.testing.assert_array_equal(rec[2], bad[2])
    assert psnr(rec) > psnr(decode(clean_data)) - 1.5                 # was 16 dB lower before
    assert len(bad_data) < 1.5 * len(clean_data)                      # the flat plane costs no jump
    st[0] *= 3    # typical slices now fill a third of the shared range: a flash mapped to all of it would jump
    clean_data = codec.encode(st)
    flash = _bad(st, "flash")
    flash_data = codec.encode(flash)
    rec = decode(flash_data)
    assert psnr(rec) > psnr(decode(clean_data)) - 1.5
    assert len(flash_data) < 1.5 * len(clean_data)                    # aligned with its neighbours: 2.6x before
    # and coded as finely, relative to its brightness, as the scene it flashed
    err_clean = np.abs(decode(clean_data)[2].astype(np.float64) - st[2]).mean()
    assert np.abs(rec[2].astype(np.float64) - flash[2]).mean() < 1.5 * 12 * err_clean


def test_modality_ignores_the_aberrant_slice():
    st = _stack()
    assert detect_modality(_bad(st, "saturated")) == detect_modality(st) == "transmitted"


@pytest.mark.parametrize("codec", ["jpeg2k", "mbt2018-mean-vbr", "mbt2018-mean-vbr3d"])
def test_a_blank_slice_is_coded_exactly_for_almost_nothing(codec):
    st = _stack()
    blank = st.copy()
    blank[3] = 1000                  # inside the others' range: nothing stretched, but a jump for a 3D model
    c = get_codec(codec, quality=2)
    data, clean = c.encode(blank), c.encode(st)
    rec = decode(data)
    np.testing.assert_array_equal(rec[3], blank[3])                  # lossy OpenJPEG made a zero slice 412s
    assert len(data) < len(clean)


@pytest.mark.parametrize("codec", ["jpeg2k", "mbt2018-mean-vbr", "mbt2018-mean-vbr3d"])
@pytest.mark.parametrize("entries", [[[7, {"lo": 1.0}]], [[True, {"lo": 1.0}]], [[2, {"lo": float("nan")}]],
                                     [[2, {"lo": "x"}]], [[2, {"slices": []}]], [[2, {}], [2, {}]], "x",
                                     [[i, {}] for i in range(6)]])
def test_damaged_per_slice_ranges_are_refused(codec, entries):
    data = get_codec(codec, quality=4).encode(_bad(_stack(), "saturated"))
    header, payloads = container.unpack(data)
    header.norm["slices"] = entries
    with pytest.raises(StreamError):
        decode(container.pack(header, payloads))


def test_the_user_is_told():
    from napari_microcomp.api import compress_array

    st = _stack()
    assert any("slice 2 is far brighter or darker than the others (a bad frame?)" in n
               for n in compress_array(_bad(st, "flash"), "jpeg2k", quality=3).notes)
    assert not any("range of its own" in n for n in compress_array(st, "jpeg2k", quality=3).notes)
    padded = st.copy()
    padded[[0, 1]] = 0                # blank planes of a padded stack are no bad frame
    notes = compress_array(padded, "mbt2018-mean-vbr3d", quality=3).notes
    assert any("slices 0, 1 are uniform (blank or saturated)" in n for n in notes)
    assert not any("bad frame" in n for n in notes)
    both = _bad(padded, "flash")
    assert [n for n in compress_array(both, "jpeg2k", quality=3).notes if "uniform" in n and "slice 2 is far" in n]
