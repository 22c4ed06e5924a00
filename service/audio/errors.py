"""The error of audio the service cannot score, in a module of its own so that decoding and
resampling (which decoding imports) both raise it and the routes answer both with 422."""

from __future__ import annotations


class AudioDecodeError(ValueError):
    """The input is not audio this service can score; the message says why."""
