"""Which layer data a dock codes and why it may refuse a layer (cheap checks on the GUI thread; the core's
``check_image`` makes the complete one on the worker)."""
from typing import Optional

import numpy as np
from napari.layers import Image
from napari.utils.notifications import show_info

from .._validate import MASK_NOTE, grey_samples, mask_as_uint8


def refuse_reason(layer) -> Optional[str]:
    """Why ``layer`` cannot be compressed, in words for the user; None when it can.

    Only cheap attribute checks run here (on the GUI thread); the core's ``check_image``
    makes the complete check (NaN/Inf, pixel type, size) on the worker.
    """
    if layer is None:
        return "select an image layer first"
    if not isinstance(layer, Image):
        return f"layer {layer.name!r} is a {type(layer).__name__} layer, not an image"
    if layer.rgb and grey_of_rgb(layer) is None:
        return (f"layer {layer.name!r} is RGB; microcomp works on single-channel images "
                "(split the channels first: right-click > Split RGB)")
    if layer.ndim < 2:
        return f"layer {layer.name!r} is {layer.ndim}D; microcomp needs a 2D or 3D image"
    if 0 in layer.data.shape:
        return f"layer {layer.name!r} is empty (shape {tuple(layer.data.shape)})"
    return too_large(layer)


def too_large(layer) -> Optional[str]:
    """Why a lazy or multiscale layer cannot be coded whole: the block a dock reads (its last three axes; a
    pyramid's full-resolution level) exceeds the memory budget. In-memory layers are not refused: already held."""
    from ..container import ENV_BUDGET, decode_budget

    if isinstance(layer.data, np.ndarray) and not layer.multiscale:
        return None
    shape = layer_shape(layer)[-3:]
    need = int(np.prod(shape, dtype=np.float64)) * np.dtype(layer.dtype).itemsize
    budget = decode_budget()
    if need <= budget:
        return None
    return (f"layer {layer.name!r}: its {'full-resolution level' if layer.multiscale else 'image'} {shape} would be "
            f"read whole ({need / 2**30:.1f} GiB), above the memory budget of {budget / 2**30:.1f} GiB "
            f"(${ENV_BUDGET}); crop it, or code the file with `microcomp compress-tiled`")


GREY_RGB_MAX_BYTES = 128 << 20   # compared on the GUI thread: ~0.1 s for 128 MB (measured)


def grey_of_rgb(layer) -> Optional[np.ndarray]:
    """The one channel of an RGB layer whose colour channels are equal (napari opens a grey PNG/JPEG/TIFF
    saved as RGB as an RGB layer); None for real colour, and for lazy or larger data."""
    data = layer.data
    if not layer.rgb or not isinstance(data, np.ndarray) or data.nbytes > GREY_RGB_MAX_BYTES:
        return None
    return grey_samples(data)


def layer_shape(layer) -> tuple:
    """``layer``'s shape without an RGB layer's colour axis."""
    return tuple(layer.data.shape)[:layer.ndim]


def layer_array(layer):
    """What a dock codes of ``layer``: its data (a multiscale layer's full-resolution level), the one channel of a
    grey image saved as RGB, or a boolean mask as uint8 0/1 (all three said)."""
    grey = grey_of_rgb(layer) if layer.rgb else None
    if grey is None:
        data = layer.data[0] if layer.multiscale else layer.data
        if layer.multiscale:
            show_info(f"napari-microcomp: layer {layer.name!r} is multiscale; using its full-resolution level "
                      f"{tuple(data.shape)}")
        as_uint8 = mask_as_uint8(data)
        if as_uint8 is not None:
            show_info(f"napari-microcomp: layer {layer.name!r} {MASK_NOTE}")
            return as_uint8
        return data
    show_info(f"napari-microcomp: layer {layer.name!r} is RGB with equal channels (a grey image); "
              "using one channel")
    return grey


def leading_index(layer, viewer, keep: int = 3) -> tuple:
    """The viewer's current position in ``layer``'s axes before its last ``keep`` ones."""
    n = layer.ndim - keep
    if n <= 0:
        return ()
    point = layer.world_to_data(viewer.dims.point)
    return tuple(min(max(int(round(point[i])), 0), layer.data.shape[i] - 1) for i in range(n))


def current_block(layer, viewer):
    """(data, name) to process: the layer, or for 4D+ layers (time-lapse z-stacks, ...) the 3D
    block shown in the viewer (pick the time point with the viewer's slider), named after it."""
    data = layer_array(layer)
    idx = leading_index(layer, viewer)
    if not idx:
        return data, layer.name
    axes = str((layer.metadata.get("microcomp") or {}).get("axes", ""))
    labels = axes[:len(idx)].lower() if len(axes) == layer.ndim else "i" * len(idx)
    return data[idx], f"{layer.name} " + " ".join(f"{a}{i}" for a, i in zip(labels, idx))
