"""The aicsimageio Reader over ``io_lif``'s parsed images: the file memory-mapped, each channel a strided view."""
from typing import Any, Dict, List, Tuple

import numpy as np

from aicsimageio.readers.reader import Reader
from aicsimageio.types import PhysicalPixelSizes

_DIMS = ["T", "C", "Z", "Y", "X"]


class LifScenes(Reader):
    """``image``: the list of ``io_lif.LifImage`` of one file (scenes in that order)."""

    def __init__(self, image: List[Any], fs_kwargs: Dict[str, Any] = {}, **kwargs: Any):
        self._images = list(image)
        self._path = str(self._images[0].path)
        self._mm = None

    @staticmethod
    def _is_supported_image(fs, path, **kwargs) -> bool:  # constructed directly by io_lif only
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

    def _planes(self):
        if self._mm is None:
            self._mm = np.memmap(self._path, mode="r")
        img = self._images[self.current_scene_index]
        return img, img.planes(self._mm)

    def _read_delayed(self):
        import dask.array as da
        import xarray as xr

        img, planes = self._planes()
        t, _, z, y, x = img.shape
        arrays = [da.from_array(v, chunks=(1, 1, y, x), name=f"lif-{self._path}-{self.current_scene_index}-{c}")
                  .astype(img.dtype) for c, v in enumerate(planes)]
        return xr.DataArray(da.stack(arrays, axis=1), dims=_DIMS, coords={"C": img.names})

    def _read_immediate(self):
        import xarray as xr

        img, planes = self._planes()
        return xr.DataArray(np.stack([np.asarray(v, img.dtype) for v in planes], axis=1), dims=_DIMS,
                            coords={"C": img.names})

    @property
    def physical_pixel_sizes(self) -> PhysicalPixelSizes:
        return PhysicalPixelSizes(*self._images[self.current_scene_index].sizes)
