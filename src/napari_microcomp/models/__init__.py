"""Network architectures: the codec registry (:mod:`.registry`, :mod:`.spec`), 1-channel 2D CompressAI
models (:mod:`.arch2d`), 3D ones (:mod:`.arch3d`), how models are run for coding (:mod:`.coding`) and
the label-free networks (:mod:`.unet`). Weight files are :mod:`napari_microcomp.weights`' business.

Importing this package does not import torch.
"""
