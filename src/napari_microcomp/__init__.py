"""napari-microcomp: classical and learned compression for microscopy, with honest metrics.

Importing this package loads only the headless core (numpy); torch, Qt and napari are
imported on first use by the parts that need them. It installs one import guard
(:mod:`napari_microcomp._triton_guard`) that keeps triton out of processes rendering with Mesa.
"""
import warnings

from . import _triton_guard
from .errors import CodecError, InputError, MicrocompError, StreamError, WeightsNotFoundError

__version__ = "0.1.0"

# Every npe2 contribution (reader, writer, sample data, widgets) imports this package first: the
# guard keeps CompressAI's indirect ``import triton`` from crashing a napari process (see module).
_triton_guard.install()
# ``import compressai`` imports torch_geometric, whose module-level ``torch.jit.script`` warns on every run of
# every command; nothing here scripts anything, so this one message is noise for our users.
warnings.filterwarnings("ignore", message=r"`torch\.jit\.script` is deprecated", category=FutureWarning)

__all__ = ["CodecError", "InputError", "MicrocompError", "StreamError", "WeightsNotFoundError",
           "__version__"]
