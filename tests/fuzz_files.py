"""Structure-aware input-file fuzzer, run as a child process by ``tests/core/test_fuzz_files.py``.

Seeds are small valid files of what ``read_image`` and ``compress-tiled`` read: TIFF in strips and tiles (none,
zlib, JPEG, PNG, JPEG 2000, JPEG XL, JPEG XR, LERC), OME-TIFF, ImageJ hyperstacks, PNG (16-bit, animated), JPEG
(baseline, progressive), NPY, a zstd CZI,
OME-Zarr (0.4, and 0.5 on zarr format 3 with shards) and plain zarr stores. Each case damages one: a TIFF tag's value or count (dimensions, offsets,
compression), a JPEG segment length or frame size, the first bytes of a strip or tile's own codestream, an OME-XML attribute, a value of a store's
.zarray/.zattrs/zarr.json, a store's chunk or shard (bytes, truncation, removal), random bytes, or a truncation; then describes it (``microcomp info``) and reads it with
``read_image``, ``open_lazy`` (a slice of it) and, for OME-TIFF, napari's reader. A case passes when each returns an array or
raises a one-line ``InputError``; another exception, a crash or a hang fails. The last case started is written
to ``--progress`` so the parent can name a case that killed the process.

    python tests/fuzz_files.py --cases 500 --seed 0 --progress /tmp/p --report /tmp/r.json
"""
import json
import re
import shutil
import struct
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fuzz_harness import arguments, run_cases  # noqa: E402
from helpers import lif_image, smooth_image, write_dv, write_lif, write_lsm, write_oib, write_stk  # noqa: E402

WEIRD = [0, 1, 2, 3, 7, 255, 256, 4095, 65535, 65536, 2 ** 20, 2 ** 31 - 1, 2 ** 32 - 1]
OME_WEIRD = ["0", "-1", "1", "3", "60000", "999999999", "5000000000", "x", "", "1e400", "2.5"]


def make_seeds(tmp: Path):
    import tifffile
    from PIL import Image

    img = smooth_image((70, 90), seed=1, bits=12)
    u8 = (img >> 4).astype(np.uint8)
    stack = smooth_image((3, 40, 48), seed=2, bits=12)
    seeds = []

    def tif(name, a, **kw):
        p = tmp / name
        tifffile.imwrite(p, a, photometric="minisblack", **kw)
        seeds.append(p)

    for comp, a in (("zlib", img), ("jpeg", u8), ("png", img), ("jpeg2000", img), ("jpegxl", img),
                    ("jpegxr", img), ("lerc", img.astype(np.float32))):
        tif(f"tile_{comp}.tif", a, tile=(32, 32), compression=comp)
        tif(f"strip_{comp}.tif", a, rowsperstrip=16, compression=comp)
    tif("plain.tif", img)
    tif("stack.tif", stack)
    tif("stack_tiles.tif", stack, tile=(16, 16), compression="jpegxr")
    tif("stack.ome.tif", stack, ome=True, metadata={"axes": "ZYX", "PhysicalSizeX": 0.5})
    tif("zc.ome.tif", np.stack([stack, stack[::-1]], 1), ome=True, metadata={"axes": "ZCYX"})
    tif("hyper.tif", np.stack([stack, stack], 1), imagej=True, metadata={"axes": "ZCYX"})
    Image.fromarray(img).save(tmp / "grey16.png")
    frames = [Image.fromarray(u8[k:k + 40]) for k in range(3)]
    frames[0].save(tmp / "anim.png", save_all=True, append_images=frames[1:])
    Image.fromarray(u8).save(tmp / "grey.jpg", quality=90)
    Image.fromarray(u8).save(tmp / "prog.jpg", quality=90, progressive=True)
    np.save(tmp / "arr.npy", stack)
    write_lsm(tmp / "zc.lsm", np.stack([stack, stack[::-1]], 1)[None])   # T, Z, C, Y, X
    write_lsm(tmp / "tz.lsm", np.stack([stack[:2]] * 2)[:, :, None], scan_type=6)
    write_stk(tmp / "t.stk", stack, times=[0, 100, 200])
    zc = np.stack([stack, stack[::-1]])[None]   # T, C, Z, Y, X
    write_lif(tmp / "two.lif", [lif_image("zc", zc), lif_image("snap", zc[:, :1, :1], "channels-last")],
              block_order=[1, 0])
    write_lif(tmp / "rgb.lif", [lif_image("rgb", np.stack([u8] * 3)[None, :, None], "interleaved", tags=[1, 2, 3])])
    write_oib(tmp / "cz.oib", np.stack([stack, stack[::-1]]), dyes=["DAPI", "GFP"])   # planes in the mini stream
    write_oib(tmp / "big.oib", smooth_image((2, 1, 70, 80), seed=3, bits=12))   # planes in sectors of their own
    write_dv(tmp / "tcz.dv", np.stack([zc[0], zc[0][:, ::-1]]), imgseq=1)   # T, C, Z, Y, X in Priism's WZT order
    # a zstd-compressed CZI (ZEN's "zstd1" with its hi/lo byte split), as pylibCZIrw 5 wrote it
    shutil.copy(Path(__file__).parent / "fixtures" / "zstd1_2ch.czi", tmp / "zstd1_2ch.czi")
    seeds += [tmp / "grey16.png", tmp / "anim.png", tmp / "grey.jpg", tmp / "prog.jpg", tmp / "arr.npy",
              tmp / "zc.lsm", tmp / "tz.lsm", tmp / "t.stk", tmp / "zstd1_2ch.czi", tmp / "two.lif", tmp / "rgb.lif",
              tmp / "tcz.dv", tmp / "cz.oib", tmp / "big.oib"]
    return seeds + _zarr_seeds(tmp, img, stack)


def _zarr_seeds(tmp: Path, img, stack):
    import numcodecs
    import zarr

    g = zarr.open_group(str(tmp / "img.ome.zarr"), mode="w")
    g.create_dataset("0", data=np.stack([stack, stack[::-1]])[None], chunks=(1, 1, 2, 16, 16),
                     compressor=numcodecs.Zlib())
    g.attrs["multiscales"] = [{"version": "0.4", "datasets": [{"path": "0", "coordinateTransformations": [
        {"type": "scale", "scale": [1, 1, 2.0, 0.5, 0.5]}]}], "axes": [
        {"name": "t", "type": "time"}, {"name": "c", "type": "channel"}] + [
        {"name": n, "type": "space", "unit": "micrometer"} for n in "zyx"]}]
    g.attrs["omero"] = {"channels": [{"label": "a"}, {"label": "b"}]}
    z = zarr.open_array(str(tmp / "plain.zarr"), mode="w", shape=img.shape, chunks=(32, 40), dtype=">u2",
                        order="F", compressor=numcodecs.Blosc("zstd", 3, numcodecs.Blosc.BITSHUFFLE))
    z[:] = img
    # OME-Zarr 0.5 (zarr format 3, sharded, crc32c-checked index), as zarr-python 3 wrote it
    shutil.copytree(Path(__file__).parent / "fixtures" / "ome05_sharded.zarr", tmp / "v3.ome.zarr")
    return [tmp / "img.ome.zarr", tmp / "plain.zarr", tmp / "v3.ome.zarr"]


ZARR_WEIRD = WEIRD + OME_WEIRD + [None, [], {}, -5, 1.5, [2 ** 31, 2 ** 31], "../x", "<f8", "|O", True]


def mutate_store(seed: Path, target: Path, rng) -> None:
    """``target``: a copy of the store ``seed`` with one file damaged: a JSON value, a chunk's bytes, or gone."""
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(seed, target)
    files = sorted(f for f in target.rglob("*") if f.is_file())
    f = files[int(rng.integers(0, len(files)))]
    data = f.read_bytes()
    if f.name in (".zarray", ".zattrs", "zarr.json") and rng.random() < 0.7:
        obj = json.loads(data)
        slots = []

        def walk(o):
            for k in (range(len(o)) if isinstance(o, list) else o if isinstance(o, dict) else ()):
                slots.append((o, k))
                walk(o[k])
        walk(obj)
        if slots:
            o, k = slots[int(rng.integers(0, len(slots)))]
            o[k] = ZARR_WEIRD[int(rng.integers(0, len(ZARR_WEIRD)))]
        f.write_text(json.dumps(obj))
    elif rng.random() < 0.15:
        f.unlink()
    else:
        f.write_bytes(mutate(f, data, rng))


def _tiff_tags(data: bytes):
    """(offset, size in bytes, tag code) of fields worth damaging: each tag's value (or first element), its
    count, and the head of the first strips' or tiles' codestreams (code -1)."""
    import io

    import tifffile

    out = []
    with tifffile.TiffFile(io.BytesIO(data)) as tf:
        wide = 8 if tf.is_bigtiff else 4
        for page in tf.pages:
            for tag in page.tags.values():
                out += [(tag.valueoffset, 4, tag.code), (tag.offset + 4, wide, tag.code)]
            out += [(o, 16, -1) for o in page.dataoffsets[:4]]
    return out


def _with_description(data: bytes, text: str) -> bytes:
    """The TIFF with its first page's description replaced (appended and re-pointed, as tifffile does)."""
    import tifffile

    with tempfile.NamedTemporaryFile(suffix=".tif") as f:
        f.write(data)
        f.flush()
        tifffile.tiffcomment(f.name, comment=text)
        return Path(f.name).read_bytes()


def _lsm_fields(data: bytes):
    """(offset, struct format) of CZ_LSMINFO's dimension, scan type and voxel size fields."""
    from tifffile import TIFF

    at = next((o for o, _, code in _tiff_tags(data) if code == 34412), None)
    if at is None:
        return []
    dt = np.dtype(TIFF.CZ_LSMINFO)
    fmts = {"u4": "<I", "i4": "<I", "u2": "<H", "f8": "<d", "i2": "<H"}   # signed as raw bits: -1 is 2³²-1
    return [(at + off, fmts[t.str[1:]]) for name, (t, off) in dt.fields.items()
            if name.startswith(("Dimension", "ScanType", "VoxelSize")) and t.str[1:] in fmts]


def _cfb_field(data: bytes, rng) -> int:
    """The offset of a 32-bit link in a compound file: a header field (sector counts and starts), an entry of the
    allocation table (sector 0) or of the mini FAT, or a directory entry's siblings, child, start or size."""
    dir_start, mfat = struct.unpack_from("<I", data, 48)[0], struct.unpack_from("<I", data, 60)[0]
    where = rng.random()
    if where < 0.2:
        return int(rng.choice([44, 48, 60, 64, 68, 72, 76]))
    if where < 0.5:
        return 512 + 4 * int(rng.integers(0, 128))
    if where < 0.65 and 512 + 512 * mfat + 512 <= len(data):
        return 512 + 512 * mfat + 4 * int(rng.integers(0, 128))
    entry = 512 + 512 * dir_start + 128 * int(rng.integers(0, 4))
    return min(entry + int(rng.choice([68, 72, 76, 116, 120])), len(data) - 4)


# DV header fields that lay out the pixels: nx, ny, sections, mode, next (ints); nt, imgseq, nw (shorts)
_DV_FIELDS = [(0, "<I"), (4, "<I"), (8, "<I"), (12, "<I"), (92, "<I"), (180, "<H"), (182, "<H"), (196, "<H")]

_LIF_ATTRS = ("BytesInc", "NumberOfElements", "Size", "Resolution", "DataType", "DimID", "Length", "MemoryBlockID")


def _lif_mutation(data: bytes, rng) -> bytes:
    """One layout attribute of the LIF's XML header set to a weird value (the header rebuilt around it), or a
    memory block header's size field."""
    n = struct.unpack_from("<I", data, 9)[0]
    xml = data[13:13 + 2 * n].decode("utf-16-le")
    if rng.random() < 0.25:   # the first memory block's size (64-bit in a version-2 file)
        b = bytearray(data)
        at = 13 + 2 * n + 9
        if at + 8 <= len(b):
            struct.pack_into("<Q", b, at, WEIRD[int(rng.integers(0, len(WEIRD)))])
        return bytes(b)
    spots = [m for m in re.finditer(r'\b(%s)="([^"]*)"' % "|".join(_LIF_ATTRS), xml)]
    m = spots[int(rng.integers(0, len(spots)))]
    weird = WEIRD if rng.random() < 0.8 else OME_WEIRD
    v = str(weird[int(rng.integers(0, len(weird)))])
    xml = xml[:m.start(2)] + v + xml[m.end(2):]
    head = xml.encode("utf-16-le")
    return struct.pack("<II", 0x70, len(head) + 5) + b"\x2a" + struct.pack("<I", len(xml)) + head + data[13 + 2 * n:]


def _czi_fields(data: bytes):
    """(offset, 4, 0) of every Start, Size and StoredSize of the CZI's subblock directory entries (in the
    directory segment and in each subblock) and of each subblock's own sizes, walking the segments from the file
    header."""
    out: list = []
    _czi_walk(data, out, [])
    return out


def _czi_data_starts(data: bytes):
    """Where each subblock's pixel data (its codestream, when compressed) begins."""
    starts: list = []
    _czi_walk(data, [], starts)
    return starts


def _czi_walk(data: bytes, out: list, starts: list) -> None:
    pos = 0

    def entry(at):   # a DirectoryEntryDV: fields, then its dimension entries of 20 bytes each
        if data[at:at + 2] != b"DV" or at + 32 > len(data):
            return at + 1
        n = struct.unpack_from("<i", data, at + 28)[0]
        for d in range(max(0, min(n, 16))):
            e = at + 32 + 20 * d
            out.extend([(e + 4, 4, 0), (e + 8, 4, 0), (e + 16, 4, 0)])
        return at + 32 + 20 * max(0, min(n, 16))

    while pos + 32 <= len(data):
        sid = data[pos:pos + 16].rstrip(b"\0")
        alloc = struct.unpack_from("<q", data, pos + 16)[0]
        body = pos + 32
        if sid == b"ZISRAWDIRECTORY":
            count, at = struct.unpack_from("<i", data, body)[0], body + 128
            for _ in range(max(0, min(count, 4096))):
                at = entry(at)
        elif sid == b"ZISRAWSUBBLOCK":
            # its metadata, attachment and data sizes (the data size's two halves), then the segment's sizes
            out.extend([(body + k, 4, 0) for k in (0, 4, 8, 12)] + [(pos + 16, 4, 0), (pos + 24, 4, 0)])
            end = entry(body + 16)
            meta = struct.unpack_from("<i", data, body)[0]
            starts.append(body + max(256, end - body) + max(meta, 0))
        if alloc <= 0:
            break
        pos = body + alloc


def _jpeg_fields(data: bytes):
    """Offsets of the 16-bit fields before a JPEG's first scan: segment lengths, a frame's height and width."""
    out, i = [], 2
    while i + 4 <= len(data) and data[i] == 0xFF:
        marker = data[i + 1]
        if marker == 0xD8 or 0xD0 <= marker <= 0xD7 or marker == 0x01:
            i += 2
            continue
        out.append(i + 2)
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):   # a frame header (SOFn)
            out += [i + 5, i + 7]
        if marker == 0xDA:   # the scan: entropy-coded data follows
            break
        i += 2 + int.from_bytes(data[i + 2:i + 4], "big")
    return out


def mutate(path: Path, data: bytes, rng) -> bytes:
    b = bytearray(data)
    kind = rng.random()
    if path.suffix == ".jpg" and kind < 0.6:
        fields = _jpeg_fields(data)
        if fields:
            off = fields[int(rng.integers(0, len(fields)))]
            struct.pack_into(">H", b, off, WEIRD[int(rng.integers(0, len(WEIRD)))] % (1 << 16))
            return bytes(b)
    if path.suffix == ".czi" and kind < 0.6:
        fields = _czi_fields(data)
        if fields:
            off = fields[int(rng.integers(0, len(fields)))][0]
            struct.pack_into("<I", b, off, WEIRD[int(rng.integers(0, len(WEIRD)))] % (1 << 32))
            return bytes(b)
    if path.suffix == ".czi" and kind < 0.75:   # a subblock's codestream header (JPEG XR, zstd)
        starts = [s for s in _czi_data_starts(data) if s < len(b)]
        if starts:
            off = starts[int(rng.integers(0, len(starts)))]
            for j in rng.integers(off, min(off + 64, len(b)), int(rng.integers(1, 5))):
                b[int(j)] = int(rng.integers(0, 256))
            return bytes(b)
    if path.name.endswith(".ome.tif") and kind < 0.35:
        xml = re.search(rb"<OME.*</OME>", data, re.S)
        if xml:
            attrs = re.findall(rb'(\w+)="([^"]*)"', xml.group(0))
            name = attrs[int(rng.integers(0, len(attrs)))][0].decode()
            text = xml.group(0).decode("latin-1")
            new = re.sub(rf'\b{name}="[^"]*"', f'{name}="{OME_WEIRD[int(rng.integers(0, len(OME_WEIRD)))]}"',
                         text, count=1)
            return _with_description(data, new)
    if path.suffix == ".lsm" and kind < 0.4:   # the CZ_LSMINFO fields that lay out the planes
        fields = _lsm_fields(data)
        if fields:
            off, fmt = fields[int(rng.integers(0, len(fields)))]
            v = WEIRD[int(rng.integers(0, len(WEIRD)))]
            struct.pack_into(fmt, b, off, v if fmt == "<d" else v % (1 << (8 * struct.calcsize(fmt))))
            return bytes(b)
    if path.suffix == ".lif" and kind < 0.5:   # the XML attributes that lay out the pixels, or a block header
        return _lif_mutation(data, rng)
    if path.suffix == ".oib" and kind < 0.6:   # a compound file's links: header, allocation tables, directory
        at = _cfb_field(data, rng)
        struct.pack_into("<I", b, at, WEIRD[int(rng.integers(0, len(WEIRD)))] % (1 << 32)
                         if rng.random() < 0.7 else int(rng.integers(0, 64)))
        return bytes(b)
    if path.suffix == ".dv" and kind < 0.6:   # a header field: sizes, pixel type, extended header length, order
        at, fmt = _DV_FIELDS[int(rng.integers(0, len(_DV_FIELDS)))]
        v = WEIRD[int(rng.integers(0, len(WEIRD)))] if rng.random() < 0.8 else -int(rng.integers(1, 5000))
        struct.pack_into(fmt, b, at, v % (1 << (8 * struct.calcsize(fmt))))
        return bytes(b)
    if path.suffix in (".tif", ".tiff", ".lsm", ".stk") and kind < 0.75:
        try:
            tags = _tiff_tags(data)
        except Exception:  # noqa: BLE001 - an unreadable seed mutation is simply byte damage below
            tags = []
        if tags:
            off, size, code = tags[int(rng.integers(0, len(tags)))]
            if code == -1:   # a segment's codestream header
                for j in rng.integers(off, min(off + 64, len(b)), int(rng.integers(1, 5))):
                    b[int(j)] = int(rng.integers(0, 256))
            else:
                v = WEIRD[int(rng.integers(0, len(WEIRD)))]
                fmt = {4: "<I", 8: "<Q"}[size]
                if off + size <= len(b):
                    struct.pack_into(fmt, b, off, v % (1 << (8 * size)))
            return bytes(b)
    if kind < 0.9:
        for j in rng.integers(0, len(b), int(rng.integers(1, 9))):
            b[int(j)] = int(rng.integers(0, 256))
        return bytes(b)
    return bytes(b[:int(rng.integers(0, len(b)))])


def _read(path: Path):
    from napari_microcomp.io import VENDOR_SUFFIXES, read_image
    from napari_microcomp.tiled import open_lazy

    from napari_microcomp.io_describe import describe_image

    describe_image(path)   # `microcomp info`: headers only for large files, else what read_image reads
    a = read_image(path)[0]
    lazy = open_lazy(path)
    np.asarray(lazy[(0,) * (lazy.ndim - 2)] if lazy.ndim > 2 else lazy[:])
    if path.name.endswith(VENDOR_SUFFIXES):   # napari's reader for vendor files
        from napari_microcomp._reader import read_microscopy

        for data, _, _ in read_microscopy(str(path)):
            np.asarray(data)
    if path.is_dir():   # a zarr store: napari's layers (every channel and time point) too
        from napari_microcomp._reader import read_zarr_layers

        read_zarr_layers(str(path))
    return a


def main() -> int:
    import logging
    import warnings

    args = arguments(500, (("--extra",), dict(nargs="*", default=[], help="more seed files (e.g. CZI, ND2 and TIFF "
                                                                          "of the shared data; read in place)")),
                     (("--only",), dict(default="", help="fuzz only the seeds whose names end so (e.g. .dv)")))
    logging.disable(logging.WARNING)   # tifffile logs what it tolerates; the outcome is what counts
    warnings.simplefilter("ignore")
    tmp = Path(tempfile.mkdtemp(prefix="mcz-filefuzz-"))
    seeds = [p for p in make_seeds(tmp) + [Path(p) for p in args.extra] if p.name.endswith(args.only)]
    originals = {p: p.read_bytes() for p in seeds if p.is_file()}
    for p in seeds:   # warm the readers' imports, so that no case is charged with them
        _read(p)
    rng = np.random.default_rng(args.seed)
    (tmp / "case").mkdir()

    def case(k):
        seed = seeds[int(rng.integers(0, len(seeds)))]
        target = tmp / "case" / seed.name
        if seed.is_dir():
            mutate_store(seed, target, np.random.default_rng([args.seed, k]))
        else:
            target.write_bytes(mutate(seed, originals[seed], np.random.default_rng([args.seed, k])))
        def attempt():
            _read(target)   # an array: read; None means the outcome "read"
        return seed.name, attempt

    run_cases(args, case, "read")
    return 0


if __name__ == "__main__":
    sys.exit(main())
