"""napari-microcomp: classical and learned compression for microscopy, with honest metrics.

Importing this package loads only the headless core (numpy); torch, Qt and napari are
imported on first use by the parts that need them.
"""
from .errors import CodecError, InputError, MicrocompError, StreamError, WeightsNotFoundError

__version__ = "0.1.0"

__all__ = ["CodecError", "InputError", "MicrocompError", "StreamError", "WeightsNotFoundError",
           "__version__"]
