"""The aicsimageio Reader over images parsed by ``io_lif``, ``io_dv`` and ``io_oib``: each channel an array-like
read plane by plane. An image has ``path``, ``name``, ``shape`` (T, C, Z, Y, X), ``dtype``, ``names``, ``sizes``
(z, y, x in µm) and ``plane(f, t, c, z)``."""
from typing import Any, Dict, List, Tuple

import numpy as np

from aicsimageio.readers.reader import Reader
from aicsimageio.types import PhysicalPixelSizes

_DIMS = ["T", "C", "Z", "Y", "X"]


class PlaneChannel:
    """One channel of an image as a (T, Z, Y, X) array-like (what ``dask.array.from_array`` needs): a
    selection reads only the planes it touches."""

    def __init__(self, img, c: int):
        self.img, self.c = img, c
        t, _, z, y, x = img.shape
        self.shape, self.dtype, self.ndim = (t, z, y, x), img.dtype, 4

    def __getitem__(self, key):
        key = key if isinstance(key, tuple) else (key,)
        key = key + (slice(None),) * (4 - len(key))
        ts, zs = np.arange(self.shape[0])[key[0]], np.arange(self.shape[1])[key[1]]
        with open(self.img.path, "rb") as f:
            out = np.stack([np.stack([self.img.plane(f, int(t), self.c, int(z))[key[2:]]
                                      for z in np.atleast_1d(zs)]) for t in np.atleast_1d(ts)])
        return out[(0 if np.ndim(ts) == 0 else slice(None), 0 if np.ndim(zs) == 0 else slice(None))]


class PlaneScenes(Reader):
    """``image``: the list of parsed images of one file (scenes in that order)."""

    def __init__(self, image: List[Any], fs_kwargs: Dict[str, Any] = {}, **kwargs: Any):
        self._images = list(image)
        self._path = str(self._images[0].path)

    @staticmethod
    def _is_supported_image(fs, path, **kwargs) -> bool:  # constructed directly by io_lif, io_dv and io_oib only
        return False

    @property
    def scenes(self) -> Tuple[str, ...]:
        if self._scenes is None:
            seen: Dict[str, int] = {}
            names = []
            for img in self._images:   # scene ids must be unique; LIF names need not be
                seen[img.name] = seen.get(img.name, 0) + 1
                names.append(img.name if seen[img.name] == 1 else f"{img.name} ({seen[img.name]})")
            self._scenes = tuple(names)
        return self._scenes

    def _channels(self):
        img = self._images[self.current_scene_index]
        return img, [PlaneChannel(img, c) for c in range(img.shape[1])]

    def _read_delayed(self):
        import dask.array as da
        import xarray as xr

        img, chans = self._channels()
        y, x = img.shape[3:]
        arrays = [da.from_array(ch, chunks=(1, 1, y, x), name=f"planes-{self._path}-{self.current_scene_index}-{c}",
                                asarray=True) for c, ch in enumerate(chans)]
        return xr.DataArray(da.stack(arrays, axis=1), dims=_DIMS, coords={"C": img.names})

    def _read_immediate(self):
        import xarray as xr

        img, chans = self._channels()
        return xr.DataArray(np.stack([ch[:] for ch in chans], axis=1), dims=_DIMS, coords={"C": img.names})

    @property
    def physical_pixel_sizes(self) -> PhysicalPixelSizes:
        return PhysicalPixelSizes(*self._images[self.current_scene_index].sizes)
