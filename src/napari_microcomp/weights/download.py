"""CompressAI-format weight files by URL: https only (or loopback), verified SHA-256, fetched once by pooch.

The hash comes from the user (``URL#sha256=<64 hex>``) or, for CompressAI's own pretrained files, from
the table CompressAI publishes (:func:`published_prefixes`); anything else is refused.
"""
import os
import re
from pathlib import Path
from typing import Dict, Optional, Tuple

from ..errors import WeightsNotFoundError

ENV_CACHE = "MICROCOMP_CACHE"
_HASH_RE = re.compile(r"-([a-f0-9]{6,})\.pth(?:\.tar)?$")


def cache_dir() -> Path:
    env = os.environ.get(ENV_CACHE)
    root = Path(env) if env else Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "napari-microcomp"
    return root / "weights"


def secure_url(url: str) -> bool:
    """https, or http to this machine's loopback (a local mirror; nothing on the wire to tamper with)."""
    from urllib.parse import urlparse

    u = urlparse(url)
    return u.scheme == "https" or (u.scheme == "http" and u.hostname in ("127.0.0.1", "localhost", "::1"))


def split_url(url: str) -> Tuple[str, Optional[str]]:
    """``URL#sha256=<64 hex>`` -> (URL, full hash); no fragment -> (URL, None)."""
    base, _, frag = url.partition("#")
    m = re.fullmatch(r"sha256=([0-9a-f]{64})", frag.lower()) if frag else None
    if frag and not m:
        raise WeightsNotFoundError(f"{url}: the fragment must be #sha256=<64 hex digits>")
    return base, (m.group(1) if m else None)


def published_prefixes() -> Dict[str, str]:
    """CompressAI's own published weights: URL -> the SHA-256 prefix its zoo puts in each file name."""
    try:
        from compressai.zoo.image import model_urls
    except ImportError:  # pragma: no cover
        return {}
    out = {}
    for by_metric in model_urls.values():
        for by_q in by_metric.values():
            for url in by_q.values():
                m = _HASH_RE.search(url)
                if m:
                    out[url] = m.group(1)
    return out


def cached_url(url: str, cache: Optional[Path] = None) -> Optional[Path]:
    """The cached download of ``url`` if it is there (never touches the network)."""
    base, _ = split_url(url)
    p = (cache or cache_dir()) / base.rstrip("/").rsplit("/", 1)[-1]
    return p if p.is_file() else None


def fetch_url(url: str, cache: Optional[Path] = None) -> Path:
    """Download ``url`` once into the cache (pooch), verified against a SHA-256 known in advance."""
    base, full = split_url(url)
    if not secure_url(base):
        raise WeightsNotFoundError(f"{base}: only https URLs are fetched")
    prefix = published_prefixes().get(base)
    if full is None and prefix is None:
        raise WeightsNotFoundError(f"{base}: not one of CompressAI's published weight files; give its full SHA-256 "
                                   f"as {base}#sha256=<64 hex digits> (a hash you got from its publisher)")
    name = base.rstrip("/").rsplit("/", 1)[-1]
    dst = (cache or cache_dir()) / name

    def verified(p: Path) -> bool:
        import pooch

        h = pooch.file_hash(str(p), alg="sha256")   # CompressAI publishes hash prefixes: compared here
        return h == full if full else h.startswith(prefix)

    if dst.is_file() and verified(dst):
        return dst
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        import pooch

        dst.unlink(missing_ok=True)
        pooch.retrieve(base, known_hash=f"sha256:{full}" if full else None, fname=name, path=str(dst.parent),
                       progressbar=False)
    except Exception as exc:
        dst.unlink(missing_ok=True)
        raise WeightsNotFoundError(f"could not download {base} ({type(exc).__name__}: {str(exc)[:200]}); offline? "
                                   f"put the file in {dst.parent}") from exc
    if not verified(dst):
        dst.unlink(missing_ok=True)
        raise WeightsNotFoundError(f"could not download {base}: its SHA-256 does not match the published one")
    return dst
