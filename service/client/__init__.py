"""A Python client of the Auscult service, sync (`AuscultClient`) and async
(`AsyncAuscultClient`), on httpx and websockets (`pip install 'auscult[client]'`): score files,
bytes and sensor series, stream audio and sensor rows and iterate the verdicts, list and reload
models. Answers are the service's own response and stream message models."""

from service.api.schemas import ClipVerdict, ModelDetail, ModelList, ReloadReport, WindowsVerdict
from service.api.streams.audio import ScoreMessage
from service.api.streams.sensor import SensorSteps
from service.client.asynchronous import AsyncAuscultClient
from service.client.errors import AuscultError, StreamClosedError
from service.client.sync import AuscultClient

__all__ = [
    "AsyncAuscultClient",
    "AuscultClient",
    "AuscultError",
    "ClipVerdict",
    "ModelDetail",
    "ModelList",
    "ReloadReport",
    "ScoreMessage",
    "SensorSteps",
    "StreamClosedError",
    "WindowsVerdict",
]
