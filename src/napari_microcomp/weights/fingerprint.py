"""Fingerprints and provenance of weight files.

``python -m napari_microcomp.weights.fingerprint [FOLDER]`` prints the provenance table of the codec
weight files in FOLDER (default: the shipped folder) from their metadata.
"""
import hashlib
import json
from pathlib import Path
from typing import Any, Dict


def file_id(path) -> str:
    """A weight file's fingerprint (``weights_id`` in streams): the first 16 hex digits of its SHA-256."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:16]


def plain_meta(meta: Dict[str, Any]) -> Dict[str, Any]:
    """Metadata as plain JSON types only, so the file loads with ``torch.load(weights_only=True)``."""
    return json.loads(json.dumps(meta, default=str))


def provenance_markdown(folder=None) -> str:
    """A Markdown table of every weight file in ``folder`` (default: the shipped one) from its metadata."""
    import torch

    folder = Path(folder) if folder else Path(__file__).resolve().parent / "codecs"   # locate.SHIPPED_DIR
    rows = ["| file | arch | q | λ | widths | steps | minutes | device | batch×patch | lr | train bpp | train PSNR | KiB |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for p in sorted(folder.glob("*.pt")):
        d = torch.load(p, map_location="cpu", weights_only=True)
        m = d.get("meta", {})
        lam = m.get("lambda")
        lam = "0.0018–0.18 (VBR)" if isinstance(lam, list) else lam
        ft = m.get("final_train") or {}
        rows.append(f"| {p.name} | {d.get('arch')} | {d.get('quality') or '1–8'} | {lam} | "
                    f"{','.join(f'{k}={v}' for k, v in d.get('widths', {}).items())} | {m.get('steps')} | "
                    f"{(m.get('seconds') or 0) / 60:.1f} | {m.get('device')} | {m.get('batch')}×{m.get('patch')} | "
                    f"{m.get('lr')} | {ft.get('bpp', float('nan')):.3f} | {ft.get('psnr', float('nan')):.2f} | "
                    f"{p.stat().st_size // 1024} |")
    return "\n".join(rows)


if __name__ == "__main__":  # pragma: no cover
    import sys

    print(provenance_markdown(sys.argv[1] if len(sys.argv) > 1 else None))
