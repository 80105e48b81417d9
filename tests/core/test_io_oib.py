"""Olympus OIB files: read plane by plane through oiffile after the compound file's chains are checked; damage
that would make oiffile loop forever (a sector chain back onto itself), cut files and missing planes refused."""
import struct

import numpy as np
import pytest

from helpers import smooth_image, write_oib
from napari_microcomp.errors import InputError
from napari_microcomp.io import channel_count, read_image
from napari_microcomp.io_describe import describe_image


def _tczyx(t=2, c=2, z=3, y=24, x=30, seed=0):
    return smooth_image((t * c * z, y, x), seed=seed, bits=12).reshape(t, c, z, y, x)


def test_every_plane_reads_back_with_names_and_pixel_size(tmp_path):
    d = _tczyx()
    p = tmp_path / "confocal.oib"
    write_oib(p, d, um_per_px=0.124, dyes=["DAPI", "Alexa Fluor 488"], z_nm=-350)
    for t in range(2):
        for c in range(2):
            a, meta = read_image(p, channel=c, timepoint=t)
            np.testing.assert_array_equal(a, d[t, c])
    assert meta["pixel_size"] == [0.35, 0.124, 0.124]
    assert channel_count(p) == (2, ["DAPI", "Alexa Fluor 488"])
    info = describe_image(p)
    assert info["kind"] == "Olympus OIB" and info["scenes"][0]["axes"] == {"T": 2, "C": 2, "Z": 3, "Y": 24, "X": 30}


def test_planes_in_sectors_of_their_own_and_a_single_plane(tmp_path):
    big = _tczyx(t=1, c=2, z=1, y=70, x=80, seed=3)   # 11 kB planes: beyond the mini stream
    p = tmp_path / "big.oib"
    write_oib(p, big[0], dyes=["GFP", "GFP"])
    a, meta = read_image(p, channel=1)
    np.testing.assert_array_equal(a, big[0, 1, 0])
    assert meta["channel_names"] == ["C0", "C1"]   # repeated dye names are not channel names
    single = tmp_path / "snap.oib"
    write_oib(single, big[0, :1])
    assert read_image(single)[0].shape == (70, 80)


def _fat(data: bytes):
    return list(struct.unpack_from("<128I", data, 512))


def _loop(p, table_at, chain_of):
    """Point the second sector of a chain back at its first."""
    b = bytearray(p.read_bytes())
    table = list(struct.unpack_from("<128I", b, table_at))
    first = chain_of(b)
    struct.pack_into("<I", b, table_at + 4 * table[first], first)
    p.write_bytes(bytes(b))


def test_a_sector_chain_that_loops_is_refused_not_followed(tmp_path):
    p = tmp_path / "loop.oib"
    write_oib(p, _tczyx(t=1, c=1, z=2, y=70, x=80)[0])   # two planes in ordinary sectors
    fat = _fat(p.read_bytes())
    first = max(i for i, v in enumerate(fat[:-1]) if v == i + 1 and fat[i - 1] > 0xFFFFFFF0)   # a stream's start
    _loop(p, 512, lambda b: first)
    with pytest.raises(InputError, match="chain"):
        read_image(p)


def test_a_mini_fat_loop_and_a_directory_loop_are_refused(tmp_path):
    p = tmp_path / "mini.oib"
    write_oib(p, _tczyx(t=1, c=1, z=2)[0])   # small planes: in the mini stream
    head = p.read_bytes()[:512]
    mfat = struct.unpack_from("<I", head, 60)[0]
    _loop(p, 512 + 512 * mfat, lambda b: 0)   # the first mini stream chain (OibInfo.txt, several mini sectors)
    with pytest.raises(InputError, match="chain"):
        read_image(p)
    q = tmp_path / "dir.oib"
    write_oib(q, _tczyx(t=1, c=1, z=2)[0])
    b = bytearray(q.read_bytes())
    dir_start = struct.unpack_from("<I", b, 48)[0]
    struct.pack_into("<I", b, 512 + 4 * dir_start, dir_start)   # the directory chain onto itself
    q.write_bytes(bytes(b))
    with pytest.raises(InputError, match="directory"):
        read_image(q)


def test_a_cut_file_and_missing_or_odd_planes_are_refused(tmp_path):
    d = _tczyx(t=1, c=2, z=3, y=70, x=80)[0]
    p = tmp_path / "cut.oib"
    write_oib(p, d)
    p.write_bytes(p.read_bytes()[:-3000])
    with pytest.raises(InputError, match="chain|truncated"):
        read_image(p)
    gap = tmp_path / "gap.oib"
    write_oib(gap, d, skip=(5,))
    with pytest.raises(InputError, match="1 of its 1 × 2 × 3 .* planes are missing"):
        read_image(gap)
    odd = tmp_path / "odd.oib"
    write_oib(odd, d, swap={5: d[1, 1, :60]})
    with pytest.raises(InputError, match="s_C002Z002.tif"):
        read_image(odd, channel=1)


def test_not_a_compound_file(tmp_path):
    p = tmp_path / "x.oib"
    p.write_bytes(b"II*\x00" + bytes(3000))
    with pytest.raises(InputError, match="x.oib"):
        read_image(p)


def test_the_oif_folder_form_reads_and_a_folder_walk_takes_the_oif_not_its_planes(tmp_path):
    from napari_microcomp.io import image_files

    d = _tczyx(t=1, c=2, z=2)[0]
    p = tmp_path / "scan.oif"
    write_oib(p, d, dyes=["DAPI", "GFP"])
    a, meta = read_image(p, channel=1)
    np.testing.assert_array_equal(a, d[1])
    assert meta["channel_names"] == ["DAPI", "GFP"] and meta["pixel_size"] == [0.5, 0.2, 0.2]
    assert [f.name for f in image_files([tmp_path])] == ["scan.oif"]
    (tmp_path / "scan.oif.files" / "s_C002Z002.tif").unlink()
    with pytest.raises(InputError, match="planes are missing"):
        read_image(p)
    lone = tmp_path / "lone.oif"
    lone.write_bytes(p.read_bytes())   # no lone.oif.files folder
    with pytest.raises(InputError, match="lone.oif"):
        read_image(lone)


def test_a_file_past_109_allocation_sectors_reads_through_its_difat(tmp_path):
    d = smooth_image((2, 1024, 1800), seed=5, bits=12)   # 7.4 MB of planes: the FAT needs DIFAT sectors
    p = tmp_path / "large.oib"
    write_oib(p, d[:, None])
    assert struct.unpack_from("<I", p.read_bytes(), 72)[0] >= 1   # DIFAT sectors declared
    for c in range(2):
        np.testing.assert_array_equal(read_image(p, channel=c)[0], d[c])


def test_two_streams_sharing_sectors_are_refused(tmp_path):
    p = tmp_path / "cross.oib"
    write_oib(p, _tczyx(t=1, c=1, z=2, y=70, x=80)[0])   # two planes in ordinary sectors
    b = bytearray(p.read_bytes())
    at = 512 + 512 * struct.unpack_from("<I", b, 48)[0]   # the directory: two sectors, one after the other here
    entries = {bytes(b[at + k:at + k + 64]).decode("utf-16-le").split("\0")[0]: at + k for k in range(0, 1024, 128)}
    start = struct.unpack_from("<I", b, entries["Stream00001"] + 116)[0]
    struct.pack_into("<I", b, entries["Stream00002"] + 116, start)   # the second plane starts where the first does
    p.write_bytes(bytes(b))
    with pytest.raises(InputError, match="chain of a stream is broken"):
        read_image(p)


def test_planes_along_another_axis_are_refused_by_name(tmp_path):
    p = tmp_path / "lambda.oif"
    write_oib(p, _tczyx(t=1, c=1, z=2)[0])
    for f in (tmp_path / "lambda.oif.files").glob("*.tif"):
        f.rename(f.with_name(f.name.replace("Z", "L")))   # s_C001L001.tif: a λ scan
    with pytest.raises(InputError, match="have a L axis; only channels, z and time are read"):
        read_image(p)
