"""Turn an exported weight file into a training checkpoint, so `microcomp train-codec --resume` can
continue training it (fresh optimizer state, step count and elapsed time carried over).

    python scripts/weights_to_ckpt.py WEIGHTS.pt OUT.ckpt
"""
import io
import sys
from dataclasses import asdict

import torch

from napari_microcomp.io import atomic_write_bytes
from napari_microcomp.models import zoo
from napari_microcomp.training.codec import CKPT_FORMAT, TrainConfig


def main(src: str, dst: str) -> None:
    d = torch.load(src, map_location="cpu", weights_only=True)
    spec = zoo.get_arch(d["arch"])
    model = spec.factory(**d["widths"])
    state = {k: (v.float() if v.is_floating_point() else v) for k, v in d["state_dict"].items()}
    zoo._rebuild_gaussian_tables(model, state)
    model.load_state_dict(state)
    main_params = [p for n, p in model.named_parameters() if not n.endswith(".quantiles")]
    aux_params = [p for n, p in model.named_parameters() if n.endswith(".quantiles")]
    meta = d.get("meta", {})
    cfg = TrainConfig(arch=d["arch"], quality=d.get("quality"), data=list(meta.get("data", [])))
    buf = io.BytesIO()
    torch.save({"format": CKPT_FORMAT, "arch": d["arch"], "widths": d["widths"], "config": asdict(cfg),
                "model": model.state_dict(), "opt": torch.optim.Adam(main_params).state_dict(),
                "aux_opt": torch.optim.Adam(aux_params).state_dict(), "step": int(meta.get("steps", 0)),
                "elapsed": float(meta.get("seconds", 0.0)),
                "sampler": __import__("numpy").random.default_rng(1).bit_generator.state,
                "torch_rng": torch.get_rng_state(), "from_weights": {"file": src, "meta": meta}}, buf)
    atomic_write_bytes(dst, buf.getvalue())
    print(f"wrote {dst} from {src} (step {meta.get('steps')}, arch {d['arch']})")


if __name__ == "__main__":
    main(*sys.argv[1:3])
