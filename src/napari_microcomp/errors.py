"""The project's exception types. Every user-facing failure is a MicrocompError."""


class MicrocompError(Exception):
    """Base class: the message is meant for the user, as is."""


class StreamError(MicrocompError):
    """A compressed stream is truncated, corrupted, foreign, or would decode wrongly."""


class InputError(MicrocompError, ValueError):
    """An array or file the tool cannot compress (RGB, 4D+, empty, NaN/Inf, ...)."""


class CodecError(MicrocompError):
    """Unknown codec, unavailable codec, or bad codec parameters."""


class WeightsNotFoundError(MicrocompError):
    """A learned model has no weights for the requested setting."""


class DecodeDriftWarning(UserWarning):
    """A learned stream decoded from exactly the encoder's latents, but rounded differently (another CPU type)."""


def out_of_memory_message(exc: MemoryError) -> str:
    """What to tell a user whose image did not fit: the failed allocation and the way round it."""
    detail = f" ({exc})" if str(exc) else ""
    return (f"out of memory{detail}: this image needs more working memory than is free; for images or volumes "
            "larger than memory use `microcomp compress-tiled` / `decompress-tiled`, or crop the image first")
