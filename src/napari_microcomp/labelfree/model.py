"""A trained label-free model: network + metadata, its weights file format, and prediction.

Weights file (``.pt``, read with ``torch.load(weights_only=True)``)::

    {"format": "napari-microcomp/labelfree", "version": 1,
     "state_dict": {name: fp16 tensor, ...},      # integer buffers kept as they are
     "meta": {"kind": "unet"|"pix2pix",
              "arch": {"ndim", "in_channels", "out_channels", "depth", "base"},
              "input": {"layout": "yx"|"zyx-channels", "n_slices": int},
              "normalization": {"input": scheme, "target": scheme},   # see normalize.py
              "training": {...provenance...}}}

Predictions are in the target's normalized units (percentile scheme of ``meta``).
"""
import math
from typing import Any, Dict, Generator, Optional

import numpy as np

from .._progress import Progress, result_of
from .._validate import check_image
from ..errors import InputError, MicrocompError
from ..weights.load import LABELFREE_FORMAT, LABELFREE_VERSION
from .normalize import normalize
from ..tiling import iter_tiled

FORMAT = LABELFREE_FORMAT
VERSION = LABELFREE_VERSION
# A 1024² image runs as one tile (no seams; ~1 GB on CPU); larger ones are tiled. Overlap 128 leaves
# 32 px discarded + 64 px blended per seam: fnet's receptive field is wide, so less overlap shows seams.
DEFAULT_INFERENCE = {"tile": 1024, "overlap": 128, "batch": 1}


def _names(names) -> str:
    """File names once each, the middle elided past three (13 focal planes paired with one target)."""
    u = list(dict.fromkeys(names))
    if not u:
        return "?"
    return ", ".join(u) if len(u) <= 3 else f"{u[0]} … {u[-1]} ({len(u)} files)"


def provenance(meta: Dict[str, Any]) -> str:
    """What a model was trained on and how far that was checked, from its metadata: a prediction looks
    equally confident on a sample it has never seen, so the user is told where it was validated. Fields that
    are missing or malformed (a user's file) are left out, never raised on."""
    d = lambda v: v if isinstance(v, dict) else {}  # noqa: E731
    t = d(meta.get("training"))
    data = [x for x in (t.get("data") if isinstance(t.get("data"), list) else []) if isinstance(x, dict)]
    names = lambda role: [str(x.get("name")) for x in data if x.get("role") == role]  # noqa: E731
    inputs, targets = names("input"), names("target")
    validation = d(t.get("validation"))
    out = str(t.get("exported_output") or "")
    if out.startswith("auxiliary target "):   # validated on the main target, not on this output
        aux, k = names("aux-target"), out.rsplit(" ", 1)[-1]
        k = int(k) - 1 if k.isdigit() else -1
        targets, validation = aux[k:k + 1] if 0 <= k < len(aux) else [], {}
    inp = d(meta.get("input"))
    text = f"{meta.get('kind', 'model')} from " + (f"a {inp.get('n_slices')}-slice z-stack"
                                                    if inp.get("layout") == "zyx-channels" else "one 2D image")
    if inputs or targets:
        text += f"; trained on {_names(inputs)} → {_names(targets)}"
    if isinstance(t.get("steps"), int) and not isinstance(t.get("steps"), bool):
        text += f" ({t['steps']:,} steps)"
    r = validation.get("best_pearson_r")
    if isinstance(r, float) and math.isfinite(r):
        text += f"; validation r {r:.2f} on a strip held out of those images"
    # one target image is one field of view, however many inputs (focal planes) were paired with it
    if len(set(targets or inputs)) <= 1:
        text += ("; a single training field of view" if inputs else "; training data not recorded") + (
            ": predictions for other samples, microscopes or stains are unvalidated (compare with a ground truth "
            "before trusting them)")
    return text


def input_caveat(image) -> Optional[str]:
    """A warning when ``image`` looks like fluorescence (:func:`~napari_microcomp.modality.detect_modality`): the
    models predict fluorescence from transmitted light, so a prediction from fluorescence means nothing."""
    from ..modality import detect_modality

    if detect_modality(image) != "fluorescence":
        return None
    return ("the input looks like fluorescence (a dark background with bright signal), not bright-field or phase: "
            "the label-free models predict fluorescence from transmitted light, so this prediction is not meaningful")


def resolve_device(device: str):
    """A torch.device for ``"cpu"``, ``"cuda"``, ``"cuda:1"`` ...; clear error when CUDA is absent."""
    import torch

    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise MicrocompError(f"device {device!r} requested but CUDA is not available; use --device cpu")
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device("cuda", torch.cuda.current_device())
    return dev


class LabelFreeModel:
    """A loaded label-free network, ready to predict a fluorescence channel.

    Use :func:`napari_microcomp.labelfree.load_model` rather than constructing it directly.
    """

    def __init__(self, net, meta: Dict[str, Any], device: str = "cpu"):
        self.net = net
        self.meta = meta
        self.device = resolve_device(device)
        self.net.to(self.device).eval()
        if getattr(self.net, "ndim", 2) == 2:
            # channels_last: measured 1.35x faster fp32 convolutions on this CPU, same results.
            self.net.to(memory_format=self._memory_format())

    def _memory_format(self):
        import torch

        return torch.channels_last if getattr(self.net, "ndim", 2) == 2 else torch.contiguous_format

    @classmethod
    def from_file(cls, path, device: str = "cpu") -> "LabelFreeModel":
        from ..weights.load import read_labelfree

        net, meta = read_labelfree(path)
        return cls(net, meta, device)

    # -- description ------------------------------------------------------------------------
    @property
    def zstack(self) -> bool:
        return self.meta["input"]["layout"] == "zyx-channels"

    @property
    def n_slices(self) -> int:
        return int(self.meta["input"].get("n_slices", 1))

    @property
    def provenance(self) -> str:
        return provenance(self.meta)

    def __repr__(self) -> str:
        what = f"z-stack of {self.n_slices}" if self.zstack else "2D"
        return f"LabelFreeModel({self.meta.get('kind')}, {what} input, device={self.device})"

    # -- prediction ----------------------------------------------------------------------------
    def prepare(self, image) -> np.ndarray:
        """Validate and normalize ``image``; return ``(C, Y, X)`` float32 network input."""
        a = check_image(image, allow_3d=True)
        if self.zstack:
            if a.ndim != 3 or a.shape[0] != self.n_slices:
                raise InputError(f"this z-stack model needs a ({self.n_slices}, Y, X) stack, got shape {a.shape}")
        elif a.ndim != 2:
            raise InputError(f"this model takes one 2D (Y, X) image, got shape {a.shape}; pick one z-slice "
                             "(e.g. --slice) or use a z-stack model")
        x = normalize(a, self.meta["normalization"]["input"])
        return x if x.ndim == 3 else x[None]

    def _runner(self, precision: str):
        import torch

        if precision not in ("fp32", "bf16"):
            raise InputError(f"precision must be 'fp32' or 'bf16', got {precision!r}")

        def run(tiles: np.ndarray) -> np.ndarray:
            with torch.inference_mode(), torch.autocast(self.device.type, dtype=torch.bfloat16,
                                                        enabled=precision == "bf16"):
                t = torch.from_numpy(np.ascontiguousarray(tiles)).to(self.device)
                return self.net(t.contiguous(memory_format=self._memory_format())).float().cpu().numpy()
        return run

    def iter_predict(self, image, tile: Optional[int] = None, overlap: Optional[int] = None,
                     batch: Optional[int] = None, precision: str = "fp32", tta: bool = False
                     ) -> Generator[Progress, None, np.ndarray]:
        """Generator yielding Progress per batch of tiles; returns the (Y, X) float32 prediction.

        ``tile``/``overlap``/``batch`` default to ``DEFAULT_INFERENCE`` (a property of this code, not
        of the weights: early exports carried a ``meta["inference"]`` with seam-prone values; it is ignored).
        ``precision="bf16"`` runs under bfloat16 autocast (about 2x faster on CPUs with AMX/AVX-512
        bf16, small numeric differences); the default is exact float32.
        ``tta=True`` averages the predictions of the 8 rotations/flips of the image (8x the time;
        on the ISL evaluation strip it raised Pearson r by about 0.04 for every shipped model).
        """
        for name, v, lo in (("tile", tile, 16), ("overlap", overlap, 0), ("batch", batch, 1)):
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo):
                raise InputError(f"{name} must be an integer ≥ {lo}, got {v!r}")
        x = self.prepare(image)
        inf = DEFAULT_INFERENCE
        kwargs = dict(tile=int(tile or inf["tile"]), overlap=int(inf["overlap"] if overlap is None else overlap),
                      batch=int(batch or inf["batch"]), multiple=self.net.multiple)
        run = self._runner(precision)
        views = [(k, flip) for k in range(4) for flip in (False, True)] if tta else [(0, False)]
        acc = None
        for i, (k, flip) in enumerate(views):
            v = np.rot90(x, k, axes=(-2, -1))
            v = np.ascontiguousarray(v[..., ::-1] if flip else v)
            gen = iter_tiled(run, v, **kwargs)
            while True:
                try:
                    ev = next(gen)
                except StopIteration as stop:
                    pred = stop.value
                    break
                yield Progress(ev.stage, i * ev.total + ev.done, len(views) * ev.total,
                               ev.message if len(views) == 1 else f"view {i + 1}/{len(views)} {ev.message}")
            pred = np.rot90(pred[..., ::-1] if flip else pred, -k, axes=(-2, -1))
            acc = pred.copy() if acc is None else acc + pred
        return np.ascontiguousarray(acc[0] / len(views), dtype=np.float32)

    def predict(self, image, **kwargs) -> np.ndarray:
        """The predicted fluorescence image (float32, normalized units) for ``image``."""
        return result_of(self.iter_predict(image, **kwargs))

    def normalize_target(self, target) -> np.ndarray:
        """Ground truth in the prediction's units (the target scheme used in training)."""
        return normalize(check_image(target, allow_3d=False), self.meta["normalization"]["target"])
