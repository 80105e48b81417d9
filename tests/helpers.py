"""Shared test helpers (a module, not conftest, so every test folder can import it)."""
from pathlib import Path

import numpy as np


def smooth_image(shape, dtype=np.uint16, seed=0, bits=16):
    """A microscopy-like test image: blurred blobs + noise, using ``bits`` of the range."""
    from scipy.ndimage import gaussian_filter

    r = np.random.default_rng(seed)
    base = gaussian_filter(r.random(shape), sigma=3) + 0.05 * r.random(shape)
    base = (base - base.min()) / (base.max() - base.min())
    if np.dtype(dtype).kind == "f":
        return (base * 1000.0 - 200.0).astype(dtype)
    top = min(2 ** bits - 1, np.iinfo(dtype).max)
    return np.round(base * top).astype(dtype)


def jxr_czi(src, dst, edit=None) -> None:
    """``src`` (uncompressed Gray8 subblocks) with every subblock re-coded as lossless JPEG XR, as ZEN can save it;
    ``edit(codestream)`` may change the first one's codestream (a bytearray) in place."""
    import struct

    import imagecodecs

    b = bytearray(Path(src).read_bytes())
    d = b.find(b"ZISRAWDIRECTORY")
    e = d + 32 + 128
    for k in range(struct.unpack_from("<i", b, d + 32)[0]):
        pos, n = struct.unpack_from("<q", b, e + 6)[0], struct.unpack_from("<i", b, e + 28)[0]
        dims = {bytes(b[e + 32 + 20 * j:e + 36 + 20 * j]).rstrip(b"\0"): struct.unpack_from("<i", b, e + 48 + 20 * j)[0]
                for j in range(n)}
        meta_size, _, size = struct.unpack_from("<iiq", b, pos + 32)
        start = pos + 32 + max(256, 48 + 20 * n) + meta_size
        plane = np.frombuffer(bytes(b[start:start + size]), np.uint8).reshape(dims[b"Y"], dims[b"X"])
        jxr = bytearray(imagecodecs.jpegxr_encode(plane, level=1.0))
        if edit is not None and k == 0:
            edit(jxr)
        b[start:start + len(jxr)] = jxr
        struct.pack_into("<q", b, pos + 40, len(jxr))   # the subblock's DataSize
        for entry in (e, pos + 48):                      # JpgXr, in the directory and in the subblock's own entry
            struct.pack_into("<i", b, entry + 18, 4)
        e += 32 + 20 * n
    Path(dst).write_bytes(bytes(b))


def write_lsm(path, data, scan_type=0, voxel_m=(1e-6, 2e-7, 2e-7), declare=None, thumbnails=True) -> None:
    """A Zeiss LSM file as LSM 510-880 write one: each image page holds one plane's channels (planar), followed
    by a reduced thumbnail page; a CZ_LSMINFO block (tag 34412) on the first page says the dimensions and scan
    type. ``data`` is (T, Z, C, Y, X); ``declare`` overrides CZ_LSMINFO fields (a damaged header)."""
    import tifffile
    from tifffile import TIFF

    n_t, n_z, n_c, y, x = data.shape
    rec = np.zeros(1, np.dtype(TIFF.CZ_LSMINFO))
    fields = dict(MagicNumber=67127628, StructureSize=rec.dtype.itemsize, DimensionX=x, DimensionY=y,
                  DimensionZ=n_z, DimensionChannels=n_c, DimensionTime=n_t, ScanType=scan_type,
                  DataType=1 if data.dtype == np.uint8 else 2, VoxelSizeX=voxel_m[2], VoxelSizeY=voxel_m[1],
                  VoxelSizeZ=voxel_m[0])
    fields.update(declare or {})
    for k, v in fields.items():
        rec[k] = v
    info = rec.tobytes()
    with tifffile.TiffWriter(path) as tw:
        for i, plane in enumerate(data.reshape(n_t * n_z, n_c, y, x)):
            tw.write(plane if n_c > 1 else plane[0], photometric="minisblack", planarconfig="separate",
                     metadata=None, extratags=[(34412, "B", len(info), info, True)] if i == 0 else [])
            if thumbnails:
                thumb = plane[:, ::4, ::4].copy()
                tw.write(thumb if n_c > 1 else thumb[0], photometric="minisblack", planarconfig="separate",
                         subfiletype=1, metadata=None)
    if n_c == 2:
        _lsm_bits_at_offset(path)


def _lsm_bits_at_offset(path) -> None:
    """Zeiss stores two channels' BitsPerSample (two uint16, which would fit in the entry) at an offset; tifffile
    reads an LSM's 2-value BitsPerSample that way, so the file must too."""
    import struct

    b = bytearray(Path(path).read_bytes())
    at = struct.unpack_from("<I", b, 4)[0]
    while at:
        n = struct.unpack_from("<H", b, at)[0]
        for e in range(at + 2, at + 2 + 12 * n, 12):
            tag, _, count = struct.unpack_from("<HHI", b, e)
            if tag == 258 and count == 2:
                values = bytes(b[e + 8:e + 12])
                b[e + 8:e + 12] = struct.pack("<I", len(b))
                b += values
        at = struct.unpack_from("<I", b, at + 2 + 12 * n)[0]
    Path(path).write_bytes(bytes(b))


def write_stk(path, stack, z_step=0.5, times=None, calibration=None) -> None:
    """A MetaMorph STK: one TIFF page whose strip holds every plane in turn, its UIC2Tag one entry per plane (z
    distance as a rational, dates and times); z distances 0 with rising ``times`` (ms) make it a time series.
    ``calibration``: (x, y, units, on) written as MetaMorph does, in the UIC1Tag: SpatialCalibration inline,
    X/YCalibration (rationals) and CalibrationUnits (a counted string) at offsets."""
    import struct

    import tifffile

    n, y, x = stack.shape
    uic2 = []
    for k in range(n):
        z = 0 if times is not None else int(round(z_step * 1000))
        uic2 += [z, 1000, 2460000, times[k] if times is not None else 0, 2460000, 0]
    uic1 = [28, 0] if calibration is None else [3, int(calibration[3]), 4, 0, 5, 0, 6, 0]
    tifffile.imwrite(path, stack.reshape(n * y, x), photometric="minisblack", metadata=None, rowsperstrip=n * y,
                     extratags=[(33628, 4, len(uic1), uic1, True), (33629, 5, 3 * n, uic2, True)])
    b = bytearray(Path(path).read_bytes())
    at = struct.unpack_from("<I", b, 4)[0]
    for e in range(at + 2, at + 2 + 12 * struct.unpack_from("<H", b, at)[0], 12):
        tag = struct.unpack_from("<H", b, e)[0]
        if tag == 257:   # ImageLength: one plane
            struct.pack_into("<I" if struct.unpack_from("<H", b, e + 2)[0] == 4 else "<H", b, e + 8, y)
        elif tag == 33629:   # UIC2Tag counts planes, each six uint32
            struct.pack_into("<I", b, e + 4, n)
        elif tag == 33628:   # UIC1Tag counts (id, value) pairs
            struct.pack_into("<I", b, e + 4, len(uic1) // 2)
            values = struct.unpack_from("<I", b, e + 8)[0]
            if calibration is not None:
                units = calibration[2].encode("latin-1") + b"\0"
                extra = [struct.pack("<II", round(v * 1e6), 1000000) for v in calibration[:2]]
                extra.append(struct.pack("<I", len(units)) + units)
                for k, chunk in enumerate(extra):
                    struct.pack_into("<I", b, values + 8 * (k + 1) + 4, len(b))
                    b += chunk
    Path(path).write_bytes(bytes(b))


def lif_image(name, data, layout="planes", voxel_m=(1e-6, 2e-7, 2e-7), bits=None, tags=None, luts=None,
              extra_dims=(), declare=None) -> dict:
    """One image of :func:`write_lif`: ``data`` (T, C, Z, Y, X). ``layout``: "planes" (the channels of a plane
    follow each other, then z, then t: LAS X's confocal stacks), "channels-last" (each channel's whole z-stack in
    turn) or "interleaved" (a colour camera's RGB: the channels of a pixel side by side). ``extra_dims``:
    (DimID, count) entries declared beyond the data's; ``declare``: attributes written over the computed ones
    per DimID (ints) or "memory" (a damaged header)."""
    return dict(name=name, data=np.ascontiguousarray(data), layout=layout, voxel_m=voxel_m, bits=bits, tags=tags,
                luts=luts, extra_dims=extra_dims, declare=declare or {})


def _lif_layout(img):
    """(strides of T, Z, Y, X; channel byte offsets; block size) as LAS X lays out ``img``'s data."""
    n_t, n_c, n_z, y, x = img["data"].shape
    item = img["data"].dtype.itemsize
    if img["layout"] == "interleaved":
        px = n_c * item
        return (px * x * y * n_z, px * x * y, px * x, px), [c * item for c in range(n_c)], px * x * y * n_z * n_t
    plane = item * x * y
    if img["layout"] == "planes":
        offs = [c * plane for c in range(n_c)]
        return (plane * n_c * n_z, plane * n_c, item * x, item), offs, plane * n_c * n_z * n_t
    return (plane * n_z, plane, item * x, item), [c * plane * n_z * n_t for c in range(n_c)], plane * n_c * n_z * n_t


def _lif_element(img, block_id, size) -> str:
    n_t, n_c, n_z, y, x = img["data"].shape
    (s_t, s_z, s_y, s_x), offs, _ = _lif_layout(img)
    kind = 1 if img["data"].dtype.kind == "f" else 0
    bits = img["bits"] or img["data"].dtype.itemsize * 8
    tags, luts = img["tags"] or [0] * n_c, img["luts"] or ["Gray"] * n_c
    chans = "".join(f'<ChannelDescription DataType="{kind}" ChannelTag="{t}" Resolution="{bits}" '
                    f'NameOfMeasuredQuantity="" Min="0" Max="0" Unit="" LUTName="{lut}" IsLUTInverted="0" '
                    f'BytesInc="{o}" BitInc="0"/>'
                    for o, t, lut in zip(offs, tags, luts))
    dims = [(1, x, s_x, img["voxel_m"][2]), (2, y, s_y, img["voxel_m"][1])]
    dims += [(3, n_z, s_z, img["voxel_m"][0])] if n_z > 1 else []
    dims += [(4, n_t, s_t, 1.0)] if n_t > 1 else []
    dims += [(d, n, 0, 1.0) for d, n in img["extra_dims"]]
    text = ""
    for dim_id, n, inc, step in dims:
        attrs = dict(DimID=dim_id, NumberOfElements=n, Origin="0", Length=f"{step * max(n - 1, 0):.6e}",
                     Unit="s" if dim_id == 4 else "m", BitInc=0, BytesInc=inc)
        attrs.update(img["declare"].get(dim_id, {}))
        text += "<DimensionDescription " + " ".join(f'{k}="{v}"' for k, v in attrs.items()) + "/>"
    size = img["declare"].get("memory", size)
    return (f'<Element Name="{img["name"]}" Visibility="1" CopyOption="1" UniqueID="u-{block_id}"><Data><Image>'
            f'<ImageDescription><Channels>{chans}</Channels><Dimensions>{text}</Dimensions></ImageDescription>'
            f'<Attachment Name="HardwareSetting"/></Image></Data><Memory Size="{size}" MemoryBlockID="{block_id}"/>'
            '<Children/></Element>')


def _lif_block(block_id: str, payload: bytes, wide: bool) -> bytes:
    import struct

    name = block_id.encode("utf-16-le")
    size = struct.pack("<Q" if wide else "<I", len(payload))
    return (struct.pack("<II", 0x70, 1 + len(size) + 1 + 4 + len(name)) + b"\x2a" + size + b"\x2a"
            + struct.pack("<I", len(block_id)) + name + payload)


def write_lif(path, images, version=2, folder="Project", block_order=None) -> None:
    """A Leica LIF file as LAS X writes one: a UTF-16 XML header (the project tree: a folder element holding
    one element per image, each naming its memory block), then the memory blocks (the root's empty one first).
    ``block_order``: the order the image blocks are written in (default: the images')."""
    import struct

    elements, blocks = "", []
    for i, img in enumerate(images):
        (s_t, s_z, s_y, s_x), offs, size = _lif_layout(img)
        buf = np.zeros(size, np.uint8)
        d = img["data"].astype(img["data"].dtype.newbyteorder("<"))
        for c, off in enumerate(offs):
            view = np.ndarray(d.shape[:1] + d.shape[2:], d.dtype, buffer=buf, offset=off, strides=(s_t, s_z, s_y, s_x))
            view[...] = d[:, c]
        block_id = f"MemBlock_{101 + i}"
        elements += _lif_element(img, block_id, size)
        blocks.append((block_id, buf.tobytes()))
    xml = (f'<LMSDataContainerHeader Version="{version}"><Element Name="{folder}" Visibility="1" CopyOption="1" '
           f'UniqueID="root"><Data><Experiment Path="x.lif"/></Data><Memory Size="0" MemoryBlockID="MemBlock_100"/>'
           f'<Children>{elements}</Children></Element></LMSDataContainerHeader>')
    head = xml.encode("utf-16-le")
    out = struct.pack("<II", 0x70, len(head) + 5) + b"\x2a" + struct.pack("<I", len(xml)) + head
    out += _lif_block("MemBlock_100", b"", version != 1)
    for j in (block_order or range(len(blocks))):
        out += _lif_block(*blocks[j], version != 1)
    Path(path).write_bytes(out)


# A DeltaVision (Priism) header: 1024 bytes; the field names of ``dv_header``'s keys, in file order.
_DV_FIELDS = ("nx ny sections mode nxst nyst nzst mx my mz dx dy dz alpha beta gamma mapc mapr maps amin amax amean "
              "ispg next dvid nblank ntst extra nint nreal nres nzfact min2 max2 min3 max3 min4 max4 type lensnum "
              "n1 n2 v1 v2 min5 max5 nt imgseq xtilt ytilt ztilt nw w1 w2 w3 w4 w5 zorig xorig yorig ntitle title")
_DV_FORMAT = "10i6f3i3f2i2hi24s4h6f6h2f2h3f6h3fi800s"
_DV_ORDER = {0: "CTZ", 1: "TZC", 2: "TCZ"}   # sections, slowest first (Priism: ZTW, WZT, ZWT, fastest first)
_DV_MODES = {np.dtype(np.uint8): 0, np.dtype(np.int16): 1, np.dtype(np.float32): 2, np.dtype(np.uint16): 6,
             np.dtype(np.int32): 7}


def write_dv(path, data, sizes=(0.3, 0.1, 0.1), waves=None, imgseq=0, ext=b"", big_endian=False, **fields) -> None:
    """A DeltaVision file of ``data`` (T, C, Z, Y, X): the 1024-byte header, ``ext`` (an extended header), the
    sections in the order ``imgseq`` names. ``fields``: header values to override (e.g. ``sections``, ``mode``)."""
    import struct

    t, c, z, y, x = data.shape
    head = dict.fromkeys(_DV_FIELDS.split(), 0)
    head.update(nx=x, ny=y, sections=t * c * z, mode=_DV_MODES[data.dtype], mx=x, my=y, mz=z, dz=sizes[0],
                dy=sizes[1], dx=sizes[2], alpha=90.0, beta=90.0, gamma=90.0, mapc=1, mapr=2, maps=3, next=len(ext),
                dvid=-16224, extra=b"", nt=t, imgseq=imgseq, nw=c, title=b"")
    for i, w in enumerate((waves or [500 + 100 * k for k in range(c)])[:5]):
        head[f"w{i + 1}"] = w
    head.update(fields)
    bo = ">" if big_endian else "<"
    out = struct.pack(bo + _DV_FORMAT, *head.values()) + ext
    axes = {"T": 0, "C": 1, "Z": 2}
    order = [axes[a] for a in _DV_ORDER.get(imgseq, "CTZ")] + [3, 4]
    pixels = np.ascontiguousarray(data.transpose(order)).astype(data.dtype.newbyteorder(bo))
    Path(path).write_bytes(out + pixels.tobytes())


def write_cfb(path, streams) -> None:
    """A Microsoft compound file (version 3, 512-byte sectors) holding ``streams`` {"a/b": bytes} ("a" a storage):
    streams under 4096 bytes in the mini stream (64-byte sectors), the others in sectors of their own; beyond 109
    allocation-table sectors (files over ~7 MB) their list goes on in DIFAT sectors."""
    import struct

    end, free, fatsect, difsect, nostream = 0xFFFFFFFE, 0xFFFFFFFF, 0xFFFFFFFD, 0xFFFFFFFC, 0xFFFFFFFF
    entries = [{"name": "Root Entry", "type": 5, "kids": []}]
    where = {"": 0}
    for full in streams:
        parts = full.split("/")
        for i in range(1, len(parts) + 1):
            key = "/".join(parts[:i])
            if key not in where:
                where[key] = len(entries)
                entries.append({"name": parts[i - 1], "type": 2 if i == len(parts) else 1, "kids": []})
                entries[where["/".join(parts[:i - 1])]]["kids"].append(where[key])
    mini, big = bytearray(), []
    for full, data in streams.items():
        e = entries[where[full]]
        e["size"] = len(data)
        if len(data) < 4096:
            e["start"] = len(mini) // 64 if data else end
            e["mini"] = -(-len(data) // 64)
            mini += data + bytes(-len(data) % 64)
        else:
            big.append((e, data + bytes(-len(data) % 512)))
    n_dir = -(-len(entries) // 4)
    n_mfat = -(-(len(mini) // 64) // 128)
    n_mini = len(mini) // 512 + (len(mini) % 512 > 0)
    rest = n_dir + n_mfat + n_mini + sum(len(d) // 512 for _, d in big)
    n_fat, n_difat = 1, 0
    while n_fat * 128 < n_fat + n_difat + rest:
        n_fat += 1
        n_difat = -(-max(n_fat - 109, 0) // 127)
    fat = [fatsect] * n_fat + [difsect] * n_difat
    def chain(n):
        start = len(fat)
        fat.extend(list(range(start + 1, start + n)) + [end])
        return start if n else end
    dir_start, mfat_start = chain(n_dir), chain(n_mfat)
    root_start = chain(n_mini)
    body = bytearray()
    for e, data in big:
        e["start"] = chain(len(data) // 512)
    fat += [free] * (n_fat * 128 - len(fat))
    minifat = []
    for e in entries:
        if e.get("mini"):
            minifat.extend(list(range(e["start"] + 1, e["start"] + e["mini"])) + [end])
    minifat += [free] * (-len(minifat) % 128)
    entries[0].update(start=root_start if mini else end, size=len(mini))
    for e in entries:   # each storage's children as a right-leaning chain, sorted as CFB orders names
        kids = sorted(e["kids"], key=lambda k: (len(entries[k]["name"]), entries[k]["name"].upper()))
        e["child"] = kids[0] if kids else nostream
        for a, b in zip(kids, kids[1:] + [None]):
            entries[a]["right"] = b if b is not None else nostream
    dirs = bytearray()
    for e in entries:
        name = e["name"].encode("utf-16-le") + b"\0\0"
        dirs += struct.pack("<64sHBBIII16sIQQIQ", name, len(name), e["type"], 1, nostream, e.get("right", nostream),
                            e["child"], bytes(16), 0, 0, 0, e.get("start", end), e.get("size", 0))
    dirs += bytes(-len(dirs) % 512)
    for e, data in big:
        body += data
    head = struct.pack("<8s16sHHHHH6sIIIIIIIII", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", bytes(16), 0x3E, 3, 0xFFFE, 9, 6,
                       bytes(6), 0, n_fat, dir_start, 0, 4096, mfat_start if n_mfat else end, n_mfat,
                       n_fat if n_difat else end, n_difat)
    head += struct.pack("<109I", *(list(range(min(n_fat, 109))) + [free] * (109 - min(n_fat, 109))))
    difat = b""
    for k in range(n_difat):   # each: the next 127 FAT sector ids, then the next DIFAT sector's
        ids = list(range(109 + 127 * k, min(n_fat, 109 + 127 * (k + 1))))
        difat += struct.pack("<128I", *(ids + [free] * (127 - len(ids)) + [n_fat + k + 1 if k + 1 < n_difat else end]))
    out = head + struct.pack(f"<{len(fat)}I", *fat) + difat + dirs
    out += struct.pack(f"<{len(minifat)}I", *minifat)[:n_mfat * 512]
    out += bytes(mini) + bytes(-len(mini) % 512) + body
    Path(path).write_bytes(out)


def _ini(sections) -> bytes:
    """An Olympus settings file: UTF-16 with a byte order mark, CRLF lines."""
    text = "".join(f"[{name}]\r\n" + "".join(f"{k}={v}\r\n" for k, v in items.items())
                   for name, items in sections.items())
    return b"\xff\xfe" + text.encode("utf-16-le")


def write_oib(path, data, um_per_px=0.2, dyes=None, name="cells", skip=(), swap=None, z_nm=500.0) -> None:
    """An Olympus OIB file (FluoView) of ``data`` (C, Z, Y, X) or (T, C, Z, Y, X): each plane a TIFF
    ``s_C001Z001[T001].tif`` in storage ``Storage00001``, the main settings (.oif) and OibInfo.txt.
    ``skip``: plane numbers (from 1, in file order) left out; ``swap``: {plane number: array} stored instead.
    A path ending in ``.oif`` writes the folder format instead: the main settings there, the planes in
    ``<name>.oif.files/``."""
    import io

    import tifffile

    d = data if data.ndim == 5 else data[None]
    t, c, z = d.shape[:3]
    info = {"Name": name, "Version": "2.0.0.0", "MainFileName": "Stream00000", "Stream00000": f"{name}.oif",
            "Storage00001": f"{name}.oif.files"}
    streams = {}
    k = 0
    for ti in range(t):
        for ci in range(c):
            for zi in range(z):
                k += 1
                if k in skip:
                    continue
                fname = f"s_C{ci + 1:03d}" + (f"Z{zi + 1:03d}" if z > 1 else "") + (f"T{ti + 1:03d}" if t > 1 else "")
                buf = io.BytesIO()
                tifffile.imwrite(buf, (swap or {}).get(k, d[ti, ci, zi]), photometric="minisblack")
                info[f"Stream{k:05d}"] = f"{name}.oif.files/{fname}.tif"
                streams[f"Storage00001/Stream{k:05d}"] = buf.getvalue()
    axes = {"Axis Parameter Common": {"AxisCount": 5, "AxisOrder": '"XYCZT"'}}
    for i, (code, n) in enumerate((("X", d.shape[4]), ("Y", d.shape[3]), ("C", c), ("Z", z), ("T", t), ("A", 0),
                                   ("L", 0), ("P", 0))):
        axes[f"Axis {i} Parameters Common"] = {"AxisCode": f'"{code}"', "MaxSize": n}
        if code == "Z":   # FluoView's z step: an interval in nm (descending stacks have negative ones)
            axes[f"Axis {i} Parameters Common"].update(Interval=z_nm, UnitName='"nm"')
    main = {"ProfileSaveInfo": {"Name": f'"{name}"', "Version": '"2.0.0.0"'}, **axes,
            "Reference Image Parameter": {"ValidBitCounts": 12, "WidthConvertValue": um_per_px,
                                          "HeightConvertValue": um_per_px, "WidthUnit": '"um"', "HeightUnit": '"um"'}}
    for ci in range(c):
        main[f"Channel {ci + 1} Parameters"] = {"DyeName": f'"{(dyes or [f"Dye{i}" for i in range(c)])[ci]}"'}
    if str(path).endswith(".oif"):
        folder = Path(f"{path}.files")
        folder.mkdir()
        for key, rel in info.items():
            if key.startswith("Stream") and key != "Stream00000":
                (folder / rel.rsplit("/", 1)[-1]).write_bytes(streams[f"Storage00001/{key}"])
        Path(path).write_bytes(_ini(main))
        return
    streams = {"OibInfo.txt": _ini({"OibSaveInfo": info}), "Stream00000": _ini(main), **streams}
    write_cfb(path, streams)
