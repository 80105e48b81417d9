"""Label-free prediction: transmitted-light (phase / bright-field) image -> fluorescence channel.

Public API (torch is imported only when a model is loaded or trained)::

    from napari_microcomp.labelfree import available_models, load_model, compare
    model = load_model("unet2d-isl-dapi")          # or a path to a .pt file; cached
    pred = model.predict(phase)                     # float32, target-normalized units
    row = compare(model, phase, dapi, codec=get_codec("jpegxl", quality=4))
"""
from .compare import compare, iter_compare
from .zoo import available_models, known_models, load_model, weights_path

__all__ = ["available_models", "known_models", "load_model", "weights_path", "compare", "iter_compare"]
