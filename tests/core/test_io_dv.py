"""DeltaVision (.dv) files: read plane by plane in every section order and byte order, checked against the ``mrc``
package's own reading and writing; damaged headers and cut files refused with one clear error."""
import numpy as np
import pytest

from helpers import smooth_image, write_dv
from napari_microcomp.errors import InputError
from napari_microcomp.io import channel_count, read_image
from napari_microcomp.io_describe import describe_image


def _tczyx(t=2, c=2, z=3, seed=0):
    return np.stack([np.stack([smooth_image((z, 24, 30), seed=seed + 2 * i + k, bits=12) for k in range(c)])
                     for i in range(t)])


@pytest.mark.parametrize("imgseq", [0, 1, 2])
@pytest.mark.parametrize("big_endian", [False, True])
def test_every_plane_reads_back_in_every_section_order(tmp_path, imgseq, big_endian):
    d = _tczyx()
    p = tmp_path / "cells.dv"
    write_dv(p, d, imgseq=imgseq, big_endian=big_endian)
    for t in range(2):
        for c in range(2):
            a, meta = read_image(p, channel=c, timepoint=t)
            np.testing.assert_array_equal(a, d[t, c])
            assert a.dtype == np.uint16 and a.dtype.isnative
    assert meta["pixel_size"] == [0.3, 0.1, 0.1] and meta["channel_names"] == ["500 nm", "600 nm"]


def test_layout_agrees_with_the_mrc_package(tmp_path):
    import mrc

    d = _tczyx(t=2, c=3, z=2, seed=4)
    p = tmp_path / "x.dv"
    write_dv(p, d, imgseq=1, ext=bytes(256))   # an extended header moves the pixels
    with mrc.DVFile(str(p)) as dv:
        ref = dict(zip(dv.sizes, range(5)))
        theirs = np.transpose(dv.asarray(squeeze=False), [ref[a] for a in "TCZYX"])
    np.testing.assert_array_equal(theirs, d)
    np.testing.assert_array_equal(read_image(p, channel=2, timepoint=1)[0], theirs[1, 2])


def test_a_file_the_mrc_package_wrote_reads(tmp_path):
    import mrc

    d = smooth_image((2 * 3, 20, 26), seed=9, bits=12).reshape(2, 3, 20, 26)
    p = tmp_path / "w.dv"
    mrc.imwrite(str(p), d, metadata={"dx": 0.065, "dy": 0.065, "dz": 0.2})
    assert channel_count(p)[0] == 2
    a, meta = read_image(p, channel=1)
    np.testing.assert_array_equal(a, d[1])
    assert meta["pixel_size"] == [0.2, 0.065, 0.065]


def test_single_plane_and_describe(tmp_path):
    d = _tczyx(t=1, c=1, z=1)
    p = tmp_path / "snap.dv"
    write_dv(p, d.astype(np.int16), waves=[0])
    a, meta = read_image(p)
    assert a.shape == (24, 30) and a.dtype == np.int16
    assert meta["pixel_size"][0] is None    # one section: no z spacing
    info = describe_image(p)
    assert info["kind"] == "DeltaVision" and info["scenes"][0]["axes"] == {"Y": 24, "X": 30}
    assert info["scenes"][0]["channels"] == ["C0"]


def test_duplicate_or_missing_wavelengths_give_plain_names(tmp_path):
    p = tmp_path / "w.dv"
    write_dv(p, _tczyx(t=1), waves=[525, 525])
    assert channel_count(p) == (2, ["C0", "C1"])


@pytest.mark.parametrize("fields, match", [
    ({"sections": 5}, "damaged"),               # 2 time points x 2 channels do not divide 5 sections
    ({"nw": 7}, "damaged"),                     # more wavelengths than the header has room for
    ({"nx": 0}, "damaged"),
    ({"mode": 4}, "complex"),
    ({"mode": 9}, "unknown"),
    ({"next": -2000}, "DeltaVision"),
    ({"next": 2**31 - 1}, "truncated or damaged"),
    ({"imgseq": 7}, "section order"),
])
def test_damaged_headers_are_refused(tmp_path, fields, match):
    p = tmp_path / "bad.dv"
    write_dv(p, _tczyx(), **fields)
    with pytest.raises(InputError, match=match):
        read_image(p)


def test_a_cut_file_is_refused(tmp_path):
    p = tmp_path / "cut.dv"
    write_dv(p, _tczyx())
    p.write_bytes(p.read_bytes()[:-100])
    with pytest.raises(InputError, match="truncated"):
        read_image(p)


def test_a_header_declaring_a_huge_image_is_refused_before_reading(tmp_path):
    p = tmp_path / "bomb.dv"
    write_dv(p, _tczyx(t=1, c=1, z=1), nx=60000, ny=60000, sections=4000)
    with pytest.raises(InputError):
        read_image(p)


def test_not_a_dv_file(tmp_path):
    p = tmp_path / "x.dv"
    p.write_bytes(b"\x00" * 2000)
    with pytest.raises(InputError, match="x.dv"):
        read_image(p)
