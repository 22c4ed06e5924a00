"""Fuzzed clips to `POST /v1/models/{name}/score`: WAV headers that lie, real WAV/FLAC files at
any rate, channel count and sample format, damaged bytes and patched FLAC STREAMINFO. Every
answer is a 2xx verdict with finite scores or a 4xx with a JSON `detail`, in bounded time."""

from __future__ import annotations

import httpx
import numpy as np
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.service.fuzz.conftest import AUDIO, FuzzServer
from tests.service.fuzz.forge import (
    UNKNOWN_SIZE,
    WAVE_FORMAT_IEEE_FLOAT,
    WAVE_FORMAT_PCM,
    encode,
    patch_flac_streaminfo,
)
from tests.service.fuzz.forge import wav as forge_wav
from tests.service.fuzz.properties import ANSWER_TIMEOUT_S, check_answer

FUZZ = settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# Rates that sit on the edges the service must check: zero, tiny, just outside a sensible
# 8-192 kHz range, the longest resampling filters the factor limit admits (159,992 and
# 191,990 Hz to 16 kHz), primes inside the range that it refuses, and the largest the field
# holds.
EDGE_RATES = [
    0,
    1,
    7,
    999,
    7999,
    8000,
    16000,
    44_099,
    159_992,
    191_990,
    191_999,
    192_000,
    192_001,
    383_999,
    1_000_003,
    15_000_001,
    2**31 - 1,
    2**32 - 1,
]
rates = st.one_of(st.sampled_from(EDGE_RATES), st.integers(0, 2**32 - 1))


def _post(server: FuzzServer, body: bytes, content_type: str = "audio/wav") -> httpx.Response:
    return httpx.post(
        f"{server.url}/v1/models/{AUDIO}/score",
        content=body,
        headers={**server.headers, "content-type": content_type},
        timeout=ANSWER_TIMEOUT_S,
    )


@st.composite
def lying_wavs(draw: st.DrawFn) -> bytes:
    """A WAV of 16-bit samples whose header lies about one thing (or, now and then, about
    everything): the other fields stay consistent, so the lie reaches the decoder."""
    n_bytes = 2 * draw(st.integers(0, 16_000))
    data = draw(st.one_of(st.just(bytes(n_bytes)), st.binary(min_size=n_bytes, max_size=n_bytes)))
    lie = draw(st.sampled_from(["rate", "rate", "data_size", "channels", "everything"]))
    every = lie == "everything"
    rate = draw(rates) if lie == "rate" or every else 16000
    data_size = None
    if lie == "data_size" or every:
        data_size = draw(
            st.one_of(st.sampled_from([0, 1, UNKNOWN_SIZE, 2**31]), st.integers(0, 2**32 - 1))
        )
    channels = 1
    if lie == "channels" or every:
        channels = draw(st.one_of(st.sampled_from([0, 2, 8, 65535]), st.integers(0, 2**16 - 1)))
    if not every:
        return forge_wav(data, rate=rate, channels=channels, data_size=data_size)
    return forge_wav(
        data,
        rate=rate,
        channels=channels,
        data_size=data_size,
        bits=draw(st.sampled_from([0, 1, 7, 8, 12, 24, 32, 64, 65535])),
        format_tag=draw(st.sampled_from([WAVE_FORMAT_PCM, WAVE_FORMAT_IEEE_FLOAT, 0, 2, 0xFFFE])),
        block_align=draw(st.one_of(st.none(), st.integers(0, 65535))),
    )


@st.composite
def real_clips(draw: st.DrawFn) -> tuple[bytes, str]:
    """A real WAV or FLAC written by libsndfile: any rate it accepts, 1-8 channels, any sample
    format, quiet to extremely loud, then possibly damaged."""
    fmt = draw(st.sampled_from(["WAV", "FLAC"]))
    subtypes = (
        ["PCM_16", "PCM_24"]
        if fmt == "FLAC"
        else ["PCM_U8", "PCM_16", "PCM_24", "PCM_32", "FLOAT", "DOUBLE"]
    )
    subtype = draw(st.sampled_from(subtypes))
    rate = draw(
        st.one_of(
            st.sampled_from([8000, 16000, 22050, 44_100, 48_000, 96_000, 192_000]),
            st.integers(1000, 65_535),
            # libFLAC encodes rates above 65,535 Hz only in steps of 10 Hz.
            st.integers(6554, 65_535 if fmt == "FLAC" else 40_000).map(lambda r: 10 * r),
        )
    )
    channels = draw(st.integers(1, 8))
    frames = draw(st.integers(1, min(40_000, 2_000_000 // channels)))
    scale = draw(st.sampled_from([0.0, 1e-30, 0.1, 1.0, 1e3, 1e19, 3e38]))
    noise = np.random.default_rng(draw(st.integers(0, 2**16))).standard_normal((frames, channels))
    with np.errstate(over="ignore"):  # 3e38 * noise overflows float32 to infinity on purpose
        samples = (scale * noise).astype(np.float32)
    clip = encode(samples, rate, fmt=fmt, subtype=subtype)
    damage = draw(st.sampled_from(["none", "truncate", "flip", "append"]))
    if damage == "truncate":
        clip = clip[: draw(st.integers(0, len(clip)))]
    elif damage == "flip":
        position = draw(st.integers(0, len(clip) - 1))
        clip = (
            clip[:position]
            + bytes([clip[position] ^ draw(st.integers(1, 255))])
            + clip[position + 1 :]
        )
    elif damage == "append":
        clip += draw(st.binary(min_size=1, max_size=512))
    return clip, "audio/flac" if fmt == "FLAC" else "audio/wav"


@given(lying_wavs())
@example(forge_wav(bytes(2), rate=15_000_001))  # issue 10: 4.7 GB, then a 500
@example(forge_wav(bytes(2), rate=2**31 - 1))  # issue 10: an immediate 500
@example(
    forge_wav(
        np.full(16000, 1e19, "<f4").tobytes(),
        rate=16000,
        bits=32,
        format_tag=WAVE_FORMAT_IEEE_FLOAT,
    )
)  # issue 10: 200 with a null score
@FUZZ
def test_wav_headers_that_lie_get_an_answer(fuzz_server: FuzzServer, clip: bytes) -> None:
    check_answer(_post(fuzz_server, clip), f"a forged WAV header {clip[:44].hex()}")


@given(real_clips())
@FUZZ
def test_real_clips_of_any_shape_get_an_answer(
    fuzz_server: FuzzServer, clip: tuple[bytes, str]
) -> None:
    body, content_type = clip
    check_answer(_post(fuzz_server, body, content_type), f"a {len(body)}-byte {content_type}")


@given(
    rate=st.one_of(st.none(), st.integers(0, 2**20 - 1)),
    total=st.one_of(st.none(), st.integers(0, 2**36 - 1)),
    channels=st.one_of(st.none(), st.integers(1, 8)),
)
@example(rate=None, total=2**36 - 1, channels=None)  # a 500: 2^36 frames allocated up front
@FUZZ
def test_flac_streaminfo_that_lies_gets_an_answer(
    fuzz_server: FuzzServer, rate: int | None, total: int | None, channels: int | None
) -> None:
    flac = encode(np.zeros(16000, dtype=np.float32), 16000, fmt="FLAC")
    forged = patch_flac_streaminfo(flac, rate=rate, total_samples=total, channels=channels)
    check_answer(
        _post(fuzz_server, forged, "audio/flac"),
        f"a FLAC whose STREAMINFO says rate={rate} total={total} channels={channels}",
    )


@given(
    body=st.binary(max_size=4096),
    content_type=st.sampled_from(
        ["audio/wav", "audio/flac", "application/json", "text/plain", "multipart/form-data", ""]
    ),
)
@FUZZ
def test_arbitrary_bytes_get_an_answer(
    fuzz_server: FuzzServer, body: bytes, content_type: str
) -> None:
    check_answer(_post(fuzz_server, body, content_type), f"{len(body)} bytes as {content_type!r}")
