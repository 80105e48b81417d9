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


class TrainingDiverged(MicrocompError):
    """Training kept exploding after every restore. Exits with its own status, which ``train-zoo --retries``
    restarts from the last checkpoint: a native fault can leave a process computing non-finite gradients
    from a state that trains fine in a fresh one (seen: cheng2020-attn on CPU, bf16)."""

    exit_code = 3


class DecodeDriftWarning(UserWarning):
    """A learned stream decoded from exactly the encoder's latents, but rounded differently (another CPU type)."""


def out_of_memory_message(exc: MemoryError) -> str:
    """What to tell a user whose image did not fit: the failed allocation and the way round it."""
    detail = f" ({exc})" if str(exc) else ""
    return (f"out of memory{detail}: this image needs more working memory than is free; for images or volumes "
            "larger than memory use `microcomp compress-tiled` / `decompress-tiled`, or crop the image first")
