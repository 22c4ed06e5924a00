"""A Python client of the Auscult service, sync (`AuscultClient`) and async
(`AsyncAuscultClient`), on httpx and websockets (`pip install 'auscult[client]'`): score files,
bytes, sensor series and sensor CSV files, stream audio (files or live frames) and sensor rows
(CSV files or live rows) and iterate the verdicts, list and reload models, list the events the
service kept, fetch their audio and label them. Answers are the service's own response and
stream message models."""

from service.api.event_schemas import EventDetail, EventOut, EventPageOut
from service.api.schemas import ClipVerdict, ModelDetail, ModelList, ReloadReport, WindowsVerdict
from service.api.streams.audio import ScoreMessage
from service.api.streams.sensor import SensorSteps
from service.client.asynchronous import AsyncAuscultClient
from service.client.errors import AuscultError, StreamClosedError
from service.client.protocol import EventQuery
from service.client.sensor_csv import SensorFileError
from service.client.sync import AuscultClient

__all__ = [
    "AsyncAuscultClient",
    "AuscultClient",
    "AuscultError",
    "ClipVerdict",
    "EventDetail",
    "EventOut",
    "EventPageOut",
    "EventQuery",
    "ModelDetail",
    "ModelList",
    "ReloadReport",
    "ScoreMessage",
    "SensorFileError",
    "SensorSteps",
    "StreamClosedError",
    "WindowsVerdict",
]
