"""`microcomp compress-tiled | decompress-tiled`: volumes larger than memory, tile by tile.

The input is memory-mapped (``.npy``, uncompressed TIFF) or read lazily through zarr (compressed or
tiled TIFF; OME-Zarr stores chunk by chunk, channel 0 and time point 0); other formats are read whole. The output of ``decompress-tiled`` is written as a memory
map (``.npy`` or ``.tif``). Peak memory follows the tile size, not the volume size.
"""
from pathlib import Path

from ..errors import InputError
from ..io import regular_file
from ..io_write import check_output
from ._args import Ints, command, in_out


def register(sub) -> None:
    p = command(sub, "compress-tiled", cmd_compress_tiled, "compress a (large) volume tile by tile into one .mcz file",
                "Any codec, applied to independent tiles with halos (seam-free cores); the volume is never loaded "
                "whole when it is .npy, TIFF or OME-Zarr.")
    in_out(p, ".npy, TIFF (memory-mapped or read lazily), OME-Zarr (read chunk by chunk; channel 0, time "
              "point 0), or any format read_image reads", "output .mcz file")
    p.add_argument("--codec", "-c", default="zstd", help="inner codec (see `microcomp codecs`)")
    p.add_argument("--quality", "-q", type=int, help="1 (smallest) … 8 (best)")
    p.add_argument("--tile", action=Ints, nargs="+",
                   help="core size per axis, e.g. 32 512 512 or 32,512,512 (default: the codec's)")
    p.add_argument("--halo", action=Ints, nargs="+", help="halo per axis, at most the tile (default: the codec's)")

    p = command(sub, "decompress-tiled", cmd_decompress_tiled,
                "decode a .mcz file tile by tile into a memory-mapped .npy/.tif")
    in_out(p, output_help="output .npy or .tif (written as a memory map, renamed when complete)")


def cmd_compress_tiled(args) -> int:
    from .._progress import drain
    from ..tiled import compress_file, open_lazy

    out = Path(args.output)
    if out.suffix.lower() != ".mcz":
        raise InputError(f"output must end in .mcz, got {out.name}")
    check_output(out, args.overwrite)
    vol = open_lazy(args.input)
    res = drain(compress_file(vol, out, args.codec, quality=args.quality, tile=args.tile, halo=args.halo),
                "compress")
    print(f"wrote {out}: {res['bytes']} bytes, {res['bpv']:.4f} bits/voxel, {res['tiles']} tiles "
          f"of ≤ {res['tile']} with halo {res['halo']} ({vol.dtype}{list(vol.shape)})")
    return 0


def cmd_decompress_tiled(args) -> int:
    from .._progress import drain
    from ..tiled import decompress_file

    regular_file(args.input)
    check_output(args.output, args.overwrite)
    arr = drain(decompress_file(args.input, args.output), "decompress")
    print(f"wrote {args.output}: {arr.dtype}{list(arr.shape)}")
    return 0
