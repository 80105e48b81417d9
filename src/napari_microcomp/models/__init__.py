"""Network architectures (1-channel 2D in :mod:`.arch2d`, 3D in ``arch3d``) and the weight zoo (:mod:`.zoo`).

Importing this package does not import torch; import :mod:`napari_microcomp.models.zoo` for the zoo.
"""
