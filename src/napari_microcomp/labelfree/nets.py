"""Compatibility alias: the label-free networks live in :mod:`napari_microcomp.models.unet`."""
from ..models.unet import (MultiScaleDiscriminator, PatchDiscriminator, UNet, build_generator,  # noqa: F401
                           count_parameters)

__all__ = ["MultiScaleDiscriminator", "PatchDiscriminator", "UNet", "build_generator", "count_parameters"]
