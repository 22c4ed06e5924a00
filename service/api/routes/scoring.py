"""Scoring a whole clip: `POST /v1/models/{name}/score`; the audio clip pipeline does the work."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from starlette.datastructures import UploadFile

from service.api.deps import ModelDep, RuntimeDep, require_api_key
from service.api.schemas import BlockVerdict, ClipVerdict, ErrorResponse, WorstBlock
from service.audio.decode import AudioDecodeError, DecodeLimits
from service.features.logmel import AudioTooShortError, mel_band_centres_hz
from service.pipelines.audio_clip import ClipVerdicts, score_clip
from service.scoring.decision import NonFiniteError
from service.scoring.detectors import AudioDetector

AUDIO_TYPES = ("audio/wav", "audio/x-wav", "audio/wave", "audio/flac")
MULTIPART = "multipart/form-data"
FILE_FIELD = "file"

_BINARY = {"schema": {"type": "string", "format": "binary"}}
_REQUEST_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "a WAV or FLAC clip as the raw body, or as the 'file' part of a form",
        "content": {
            **{media: _BINARY for media in AUDIO_TYPES},
            MULTIPART: {
                "schema": {
                    "type": "object",
                    "properties": {FILE_FIELD: {"type": "string", "format": "binary"}},
                    "required": [FILE_FIELD],
                }
            },
        },
    }
}

router = APIRouter(
    prefix="/v1/models",
    tags=["scoring"],
    dependencies=[Depends(require_api_key)],
    responses={401: {"model": ErrorResponse, "description": "missing or wrong API key"}},
)


async def _read_clip(request: Request) -> bytes:
    """The clip's bytes from a raw audio body or a multipart form's file part."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type in AUDIO_TYPES:
        data = await request.body()
    elif media_type == MULTIPART:
        async with request.form(max_files=1, max_fields=8) as form:
            upload = form.get(FILE_FIELD)
            if not isinstance(upload, UploadFile):
                raise HTTPException(
                    status_code=422,
                    detail=f"the form has no file part named {FILE_FIELD!r} holding the clip",
                )
            data = await upload.read()
    else:
        raise HTTPException(
            status_code=415,
            detail=f"unsupported content type {media_type or '(none)'!r}: send the clip as "
            f"{', '.join(AUDIO_TYPES)}, or as the {FILE_FIELD!r} part of {MULTIPART}",
        )
    if not data:
        raise HTTPException(status_code=422, detail="the clip is empty (0 bytes)")
    return data


@router.post(
    "/{name}/score",
    summary="Score a clip: the verdict, per-block scores and the worst block's band errors",
    openapi_extra=_REQUEST_BODY,
    responses={
        400: {"model": ErrorResponse, "description": "the model does not score audio"},
        404: {"model": ErrorResponse, "description": "no such model"},
        413: {"model": ErrorResponse, "description": "body over AUSCULT_MAX_BODY_BYTES"},
        415: {"model": ErrorResponse, "description": "not a WAV/FLAC or multipart body"},
        422: {
            "model": ErrorResponse,
            "description": "unreadable, too short or too long audio, or too loud to score",
        },
        503: {"model": ErrorResponse, "description": "scoring pool full; see Retry-After"},
    },
)
async def score(
    request: Request,
    model: ModelDep,
    runtime: RuntimeDep,
    station: Annotated[
        str | None,
        Query(max_length=64, description="where the clip was recorded, for metrics"),
    ] = None,
    blocks: Annotated[
        bool,
        Query(
            description="include every block's verdict (the default); false answers "
            "`blocks: null`, a shorter answer for clients that read only the clip's verdict"
        ),
    ] = True,
) -> ClipVerdict:
    detector = model.audio
    if detector is None:
        raise HTTPException(
            status_code=400,
            detail=f"model {model.name!r} is a {model.kind} model; it does not score audio",
        )
    data = await _read_clip(request)
    try:
        clip = await runtime.pool.run(
            score_clip,
            detector,
            data,
            limits=DecodeLimits.from_settings(runtime.settings),
            metrics=runtime.metrics,
            station=station,
            events=runtime.events,
        )
    except (AudioDecodeError, AudioTooShortError, NonFiniteError) as exc:
        raise HTTPException(status_code=422, detail=str(exc)) from exc

    return clip_answer(model.name, model.version, station, detector, clip, blocks=blocks)


def clip_answer(
    name: str,
    version: str,
    station: str | None,
    detector: AudioDetector,
    clip: ClipVerdicts,
    *,
    blocks: bool,
) -> ClipVerdict:
    """The answer to POST /score: the clip's verdicts in the API's form (`blocks`: with every
    block's verdict)."""
    worst = clip.blocks[clip.worst_block]
    features = detector.scorer.manifest.features
    return ClipVerdict(
        model=name,
        version=version,
        station=station,
        duration_s=clip.duration_s,
        sample_rate=clip.sample_rate,
        channels=clip.channels,
        model_sample_rate=features.sample_rate,
        operating_point=detector.operating_point,
        score=clip.score,
        threshold=detector.clip.threshold,
        ratio=clip.verdict.ratio,
        anomaly=clip.verdict.anomaly,
        block_threshold=detector.block.threshold,
        blocks=[BlockVerdict.of(block) for block in clip.blocks] if blocks else None,
        worst_block=WorstBlock.of(
            worst,
            band_error=[float(v) for v in clip.worst_band_error],
            band_hz=mel_band_centres_hz(features).tolist(),
        ),
    )
