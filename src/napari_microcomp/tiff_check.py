"""What a TIFF declares, checked before tifffile and aicsimageio act on it.

A compressed strip or tile carries its own codestream, whose declared size the native decoder allocates before
tifffile checks it against the strip or tile (a 15 kB JPEG XR tile edited to say 20000² took 800 MB and 5 s,
60000² would take 7.2 GB). An OME-XML's plane counts are expanded into lists before they are checked against the
file (``PlaneCount="999999999"``: 16 GB and ~3 minutes), its channel count into per-channel coordinates
(``SizeC="60000"``: 42 s)."""
import math
import os
import struct
from pathlib import PurePath
import xml.etree.ElementTree as ET

from .codestreams import Undecodable, j2k_dims, jpeg_dims, jxl_dims, jxr_dims, lerc_wrapped_dims, png_dims
from .errors import InputError
from .io_checks import MAX_CHANNELS, quiet_readers

_PEEK = {"JPEG": jpeg_dims, "JPEG_99": jpeg_dims, "PNG": png_dims, "JPEGXL": jxl_dims, "LERC": lerc_wrapped_dims,
         "JPEGXR": jxr_dims, "JPEGXR_NDPI": jxr_dims, "JPEG2000": j2k_dims, "JPEG_2000_LOSSY": j2k_dims,
         "APERIO_JP2000_YCBC": j2k_dims, "APERIO_JP2000_RGB": j2k_dims}
_HEAD, _MORE = 4096, 1 << 20   # bytes read for a header; retried with more when it was not found there
_SLACK = 65536                 # pixels: writers' padding of a strip or tile is never near this
MAX_PLANES = 10**7             # planes one OME image may declare (10^7 of 512² uint16 would be 5 TB)
MAX_FILES = 10**4              # files one multi-file OME-TIFF may name (Micro-Manager: one per 4 GB)
_SAMPLES = 4                   # an OME plane per sample of an RGB(A) page


def check_tiff(tf, name: str) -> None:
    """:func:`check_ome`, then :func:`check_segments` for every series of the open TiffFile ``tf``."""
    check_ome(tf, name)
    for series in tf.series:
        missing = sum(page is None for page in series.pages)
        if missing:   # tifffile reads a plane its OME-XML points past the pages (or to a missing file) as zeros
            raise InputError(f"{name}: {missing:,} of the {len(series.pages):,} planes its metadata "
                             "lists are not in the file (they would read as zeros); the file is damaged or incomplete, "
                             "refusing to read it")
        check_segments(tf, series.pages, name)


def check_ome(tf, name: str) -> None:
    """Refuse OME-XML whose plane or channel counts are beyond any acquisition (they cost memory and time before
    anything compares them with the file). XML that does not parse is left to tifffile, which says so."""
    if not tf.is_ome:
        return
    try:
        root = ET.fromstring(tf.ome_metadata)
    except (ET.ParseError, TypeError, ValueError):
        return
    total, largest, others = 0, 0, set()
    own = (root.get("UUID") or "").strip()
    for el in root.iter():
        tag = el.tag.rsplit("}", 1)[-1]
        if tag == "Pixels":
            z, c, t = (_count(el.get(f"Size{a}")) or 1 for a in "ZCT")
            planes = z * c * t
            total += planes
            largest = max(largest, (_count(el.get("SizeX")) or 1) * (_count(el.get("SizeY")) or 1))
            if planes > MAX_PLANES or c > MAX_CHANNELS:
                raise InputError(f"{name}: its OME-XML declares {planes:,} planes ({c:,} channels), beyond "
                                 f"any acquisition (at most {MAX_PLANES:,} planes, {MAX_CHANNELS:,} channels); "
                                 "the metadata is damaged or crafted, refusing to read it")
        elif tag == "TiffData" and (_count(el.get("PlaneCount")) or 0) > MAX_PLANES:
            raise InputError(f"{name}: its OME-XML says one TiffData holds {el.get('PlaneCount')} planes (at most "
                             f"{MAX_PLANES:,}); the metadata is damaged or crafted, refusing to read it")
        elif tag == "UUID" and el.get("FileName") not in (None, name) and not _is_own(el, own):
            others.add(el.get("FileName"))
    if others:
        return _check_companions(tf, name, others)
    # one file holds them all: SizeT="60000" on 6 pages had aicsimageio work 91 s and take 1.2 GB, and
    # SizeX="999999999" on 40×48 pages made it allocate 15 GB
    pages = len(tf.pages)
    if total > _SAMPLES * pages:
        raise InputError(f"{name}: its OME-XML declares {total:,} planes but the file has {pages:,} pages and names "
                         "no other file; the file is truncated or its metadata damaged, refusing to read it")
    page_px = max(p.imagewidth * p.imagelength for p in tf.pages)
    if largest > page_px:
        raise InputError(f"{name}: its OME-XML declares planes of {largest:,} pixels but no page of the file has "
                         f"more than {page_px:,}; its metadata is damaged, refusing to read it")


def _check_companions(tf, name: str, files) -> None:
    """A multi-file OME-TIFF (Micro-Manager, Bio-Formats): every other file its OME-XML names must lie beside it,
    by a plain relative name. tifffile fills a missing file's planes with zeros (a warning in a log), so a
    stack missing one file would have been coded as if those planes were black."""
    folder = getattr(tf.filehandle, "dirname", "")
    if len(files) > MAX_FILES:
        raise InputError(f"{name}: its OME-XML names {len(files):,} other files (at most {MAX_FILES:,}); the metadata "
                         "is damaged or crafted, refusing to read it")
    for f in sorted(files):
        parts = PurePath(f).parts
        if not folder or not parts or PurePath(f).is_absolute() or ".." in parts or "\\" in f:
            raise InputError(f"{name}: its OME-XML takes planes from {f!r}, which is not a file name beside it; "
                             "refusing to read it")
        if not os.path.isfile(os.path.join(folder, f)):
            raise InputError(f"{name} is one file of a multi-file OME-TIFF whose file {f} is missing (its planes "
                             "would read as zeros); put the set's files together in one folder")


def one_per_ome_set(files):
    """The files of a folder walk with each multi-file OME-TIFF (Micro-Manager) once, by the file holding its first
    plane: any of its files reads the whole set."""
    names = {(f.parent, f.name) for f in files}
    keep = []
    for f in files:
        head = ome_set_head(f) if f.name.lower().endswith((".ome.tif", ".ome.tiff")) else f.name
        if head == f.name or (f.parent, head) not in names:
            keep.append(f)
    return keep


def ome_set_head(path) -> str:
    """The name of the file that holds the first plane of the multi-file OME-TIFF that ``path`` belongs to (its
    own name when it is alone, or anything about it cannot be read: reading it will say what)."""
    import tifffile

    name = os.path.basename(path)
    try:
        with quiet_readers(path), tifffile.TiffFile(path) as tf:
            root = ET.fromstring(tf.ome_metadata) if tf.is_ome else None
    except Exception:   # damaged: left to the reader, which refuses it with the reason
        return name
    own = (root.get("UUID") or "").strip() if root is not None else ""
    first = next((el for el in (root.iter() if root is not None else ())
                  if el.tag.rsplit("}", 1)[-1] == "UUID" and el.get("FileName")), None)
    if first is None or _is_own(first, own) or PurePath(first.get("FileName")).name != first.get("FileName"):
        return name
    return first.get("FileName")


def _is_own(el, own: str) -> bool:
    """A TiffData's UUID that is the file's own (its OME root's UUID): the file itself, whatever name the XML
    gives it (tifffile matches by UUID, so a renamed file still reads)."""
    return bool(own) and (el.text or "").strip() == own


def _count(v):
    try:
        return max(int(v), 1)
    except (TypeError, ValueError):
        return None


def check_segments(tf, pages, name: str) -> None:
    """Refuse ``pages`` (of a series) of the open TiffFile ``tf`` if a segment's codestream declares far more pixels than
    the segment holds, or whose header says what its decoder would crash on. Segments whose header cannot be
    parsed are left to the decoder (which fails safely on garbage); only a parsed header is held to account."""
    for page in pages:
        if page is None:
            continue
        fh = getattr(page.parent, "filehandle", None) or tf.filehandle   # a multi-file OME series: the page's file
        key = getattr(page, "keyframe", None) or page
        _check_layout(page, key, name)
        peek = _PEEK.get(getattr(key.compression, "name", ""))
        if peek is None:
            continue
        rows, cols = key.chunks[:2]
        for off, n in zip(page.dataoffsets, page.databytecounts):
            try:
                dims = _declared(fh, peek, off, n)
            except Undecodable as exc:
                raise InputError(f"{name}: a {key.compression.name} {'tile' if key.is_tiled else 'strip'} is damaged "
                                 f"({exc}); refusing to decode it") from None
            if dims is not None and dims[0] * dims[1] > 4 * rows * cols + _SLACK:
                raise InputError(f"{name}: a {key.compression.name} {'tile' if key.is_tiled else 'strip'} of "
                                 f"{rows}×{cols} pixels declares {dims[0]}×{dims[1]}; the file is damaged or "
                                 f"crafted, refusing to decode it")


def _check_layout(page, key, name: str) -> None:
    """Refuse a page whose strips or tiles cannot hold the image it declares: fewer segments than its size needs
    (a 4×4 page edited to 2³¹ rows had `compress-tiled` read fill until it was stopped), or a segment past the end of
    the file (truncated)."""
    chunked = getattr(key, "chunked", None)
    offsets, counts = page.dataoffsets, page.databytecounts
    expected = math.prod(int(n) for n in chunked or ())
    what = "tiles" if key.is_tiled else "strips"
    if chunked and len(offsets) != expected:
        raise InputError(f"{name}: a page of shape {tuple(key.shape)} needs {expected:,} {what} but lists "
                         f"{len(offsets):,}; the file is damaged or crafted, refusing to read it")
    size = getattr(getattr(page.parent, "filehandle", None), "size", None)
    end = max((o + c for o, c in zip(offsets, counts) if c), default=0)
    if size is not None and end > size:
        raise InputError(f"{name}: its {what} run to byte {end:,} but the file has {size:,}; the file is truncated "
                         "or damaged, refusing to read it")
    if size is not None and int(key.compression) == 1 and offsets:
        # uncompressed data is read by the page's declared size from its first offset, whatever the byte counts say
        need = math.prod(int(n) for n in key.shape) * int(key.bitspersample) // 8
        if min(offsets) + need > size:
            raise InputError(f"{name}: a page of shape {tuple(key.shape)} needs {need:,} bytes from byte "
                             f"{min(offsets):,} but the file has {size:,}; the file is truncated or damaged, "
                             "refusing to read it")


def _declared(fh, peek, off: int, n: int):
    for size in (_HEAD, _MORE):
        if not n:
            return None
        fh.seek(off)
        try:
            return peek(fh.read(min(n, size)))
        except Undecodable:
            raise
        except (ValueError, IndexError, KeyError, struct.error):
            if n <= size:
                return None
    return None
