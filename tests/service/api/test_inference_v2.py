"""The Open Inference Protocol v2 routes, driven by NVIDIA's own client (`tritonclient.http`)
against a real server with real ONNX bundles: the same scores as /v1, model metadata and
readiness, older versions addressable, and errors in the protocol's shape."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from service.bundle.manifest import AudioManifest, read_manifest
from tests.bundle_factory import machine_sound, sensor_series
from tests.server import LiveServer
from tests.service.clips import RATE, clip, encode, small_audio_bundle
from tests.service.served import fan_and_press, keyed_server

tritonhttp = pytest.importorskip("tritonclient.http")
InferenceServerException = pytest.importorskip("tritonclient.utils").InferenceServerException

KEY = "v2-test-key-0123456789"
CHANNELS = 4
MAX_BODY = 4 * 1024 * 1024


def _key() -> dict[str, str]:
    """A fresh dict for each call: tritonclient adds its own headers to the one it is given."""
    return {"X-API-Key": KEY}


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = fan_and_press(tmp_path_factory.mktemp("models"), CHANNELS)
    # Version 2 is served; its thresholds differ, so which version answered shows.
    small_audio_bundle(folder / "fan-2", name="fan", version="2", threshold_scale=3.0)
    return folder


@pytest.fixture(scope="module")
def server(models: Path) -> Iterator[LiveServer]:
    with keyed_server(models, KEY, max_body_bytes=MAX_BODY) as live:
        yield live


@pytest.fixture
def triton(server: LiveServer) -> Iterator[Any]:
    client = tritonhttp.InferenceServerClient(server.url.removeprefix("http://"))
    yield client
    client.close()


@pytest.fixture
def http(server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, headers=_key(), timeout=60.0) as client:
        yield client


def _bytes_input(data: bytes, name: str = "audio") -> Any:
    audio = tritonhttp.InferInput(name, [1], "BYTES")
    audio.set_data_from_numpy(np.array([data], dtype=np.object_), binary_data=True)
    return audio


def _number_input(name: str, values: np.ndarray, *, binary: bool) -> Any:
    tensor = tritonhttp.InferInput(name, list(values.shape), "FP32")
    tensor.set_data_from_numpy(values.astype(np.float32), binary_data=binary)
    return tensor


def _outputs(names: list[str], *, binary: bool) -> list[Any]:
    return [tritonhttp.InferRequestedOutput(name, binary_data=binary) for name in names]


def _assert_same_as_clip_verdict(result: Any, verdict: dict[str, Any]) -> None:
    assert result.as_numpy("score").tolist() == [verdict["score"]]
    assert result.as_numpy("threshold").tolist() == [verdict["threshold"]]
    assert result.as_numpy("ratio").tolist() == [verdict["ratio"]]
    assert result.as_numpy("anomaly").tolist() == [verdict["anomaly"]]
    assert result.as_numpy("block_scores").tolist() == [b["score"] for b in verdict["blocks"]]
    assert result.as_numpy("block_anomalies").tolist() == [b["anomaly"] for b in verdict["blocks"]]


def test_health_answers_without_a_key(triton: Any, server: LiveServer) -> None:
    assert triton.is_server_live()
    assert triton.is_server_ready()
    assert httpx.get(f"{server.url}/v2/health/ready").json() == {"ready": True}


def test_server_metadata_names_the_binary_extension(triton: Any) -> None:
    metadata = triton.get_server_metadata(headers=_key())
    assert metadata["name"] == "auscult"
    assert "binary_tensor_data" in metadata["extensions"]


def test_model_metadata_lists_versions_inputs_and_outputs(triton: Any) -> None:
    fan = triton.get_model_metadata("fan", headers=_key())
    assert (fan["name"], fan["versions"], fan["platform"]) == ("fan", ["1", "2"], "auscult-onnx")
    assert [(t["name"], t["datatype"]) for t in fan["inputs"]] == [
        ("audio", "BYTES"),
        ("samples", "FP32"),
    ]
    assert [t["name"] for t in fan["outputs"]] == [
        "score", "threshold", "ratio", "anomaly", "block_scores", "block_anomalies",
    ]  # fmt: skip
    press = triton.get_model_metadata("press", headers=_key())
    assert press["inputs"] == [{"name": "samples", "datatype": "FP32", "shape": [-1, CHANNELS]}]
    assert [t["name"] for t in press["outputs"]][-2:] == ["step_scores", "step_anomalies"]
    old = triton.get_model_metadata("fan", model_version="1", headers=_key())
    assert old["versions"] == ["1", "2"]


def test_model_readiness_by_name_and_version(triton: Any) -> None:
    assert triton.is_model_ready("fan", headers=_key())
    assert triton.is_model_ready("fan", "1", headers=_key())
    assert not triton.is_model_ready("fan", "9", headers=_key())
    assert not triton.is_model_ready("pump", headers=_key())


@pytest.mark.parametrize("binary_outputs", [True, False], ids=["binary", "json"])
def test_a_wav_file_scores_as_on_v1(triton: Any, http: httpx.Client, binary_outputs: bool) -> None:
    wav = clip(2.0, seed=5, anomalous=True)
    verdict = http.post(
        "/v1/models/fan/score", content=wav, headers={"Content-Type": "audio/wav"}
    ).json()
    names = ["score", "threshold", "ratio", "anomaly", "block_scores", "block_anomalies"]
    result = triton.infer(
        "fan",
        [_bytes_input(wav)],
        outputs=_outputs(names, binary=binary_outputs),
        headers=_key(),
    )
    assert verdict["anomaly"] is True
    _assert_same_as_clip_verdict(result, verdict)
    response = result.get_response()
    assert (response["model_name"], response["model_version"]) == ("fan", "2")


def test_all_outputs_come_when_none_are_named(triton: Any, http: httpx.Client) -> None:
    wav = clip(1.5, seed=6)
    verdict = http.post(
        "/v1/models/fan/score", content=wav, headers={"Content-Type": "audio/wav"}
    ).json()
    result = triton.infer("fan", [_bytes_input(wav)], headers=_key(), request_id="r-7")
    _assert_same_as_clip_verdict(result, verdict)
    assert result.get_response()["id"] == "r-7"


def test_float_samples_with_their_rate_score_as_the_same_audio_on_v1(
    triton: Any, http: httpx.Client
) -> None:
    rate = 22050  # resampled to the model's 16 kHz as a clip at that rate would be
    samples = machine_sound(2.0, sample_rate=rate, seed=8, anomalous=True)
    as_file = encode(samples, rate, subtype="FLOAT")
    verdict = http.post(
        "/v1/models/fan/score", content=as_file, headers={"Content-Type": "audio/wav"}
    ).json()
    result = triton.infer(
        "fan",
        [_number_input("samples", samples, binary=False)],
        headers=_key(),
        parameters={"sample_rate": rate},
    )
    _assert_same_as_clip_verdict(result, verdict)


def test_base64_audio_in_plain_json(http: httpx.Client) -> None:
    wav = clip(1.5, seed=9)
    verdict = http.post(
        "/v1/models/fan/score", content=wav, headers={"Content-Type": "audio/wav"}
    ).json()
    request = {
        "inputs": [
            {"name": "audio", "shape": [1], "datatype": "BYTES",
             "data": [base64.b64encode(wav).decode()]},
        ],
    }  # fmt: skip
    answer = http.post("/v2/models/fan/infer", json=request)
    assert answer.status_code == 200, answer.text
    outputs = {o["name"]: o for o in answer.json()["outputs"]}
    assert outputs["score"] == {"name": "score", "shape": [1], "datatype": "FP64",
                                "data": [verdict["score"]]}  # fmt: skip
    assert outputs["anomaly"]["data"] == [verdict["anomaly"]]


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_a_sensor_series_scores_as_on_v1(triton: Any, http: httpx.Client, binary: bool) -> None:
    series = sensor_series(300, channels=CHANNELS, seed=3, anomaly=(150, 180, 1))
    verdict = http.post("/v1/models/press/windows", json=series.tolist()).json()
    result = triton.infer(
        "press",
        [_number_input("samples", series, binary=binary)],
        outputs=_outputs(
            ["score", "threshold", "ratio", "anomaly", "step_scores", "step_anomalies"],
            binary=binary,
        ),
        headers=_key(),
    )
    assert verdict["anomaly"] is True
    assert result.as_numpy("step_scores").tolist() == verdict["scores"]
    assert result.as_numpy("step_anomalies").tolist() == verdict["anomalies"]
    assert result.as_numpy("score").tolist() == [max(verdict["scores"])]
    assert result.as_numpy("threshold").tolist() == [verdict["threshold"]]
    assert result.as_numpy("ratio").tolist() == [verdict["max_ratio"]]
    assert result.as_numpy("anomaly").tolist() == [True]


def test_an_older_version_answers_when_addressed(triton: Any, models: Path) -> None:
    wav = clip(1.5, seed=10)
    old = read_manifest(models / "fan-1")
    new = read_manifest(models / "fan-2")
    assert isinstance(old, AudioManifest)
    assert isinstance(new, AudioManifest)
    first = triton.infer("fan", [_bytes_input(wav)], model_version="1", headers=_key())
    latest = triton.infer("fan", [_bytes_input(wav)], headers=_key())
    assert first.get_response()["model_version"] == "1"
    assert first.as_numpy("threshold").tolist() == [old.thresholds(None)[0]]
    assert latest.as_numpy("threshold").tolist() == [new.thresholds(None)[0]]
    # The same linear model in both bundles: the scores agree, the verdict thresholds do not.
    assert first.as_numpy("score").tolist() == latest.as_numpy("score").tolist()


def _refusal(call: Any) -> InferenceServerException:
    with pytest.raises(InferenceServerException) as caught:
        call()
    return caught.value


def test_unknown_models_and_versions_are_404(triton: Any) -> None:
    wav = clip(1.0)
    missing = _refusal(lambda: triton.infer("pump", [_bytes_input(wav)], headers=_key()))
    assert missing.status() == "404"
    assert "no model named 'pump'" in missing.message()
    version = _refusal(
        lambda: triton.infer("fan", [_bytes_input(wav)], model_version="7", headers=_key())
    )
    assert version.status() == "404"
    assert "no version '7'" in version.message()
    metadata = _refusal(lambda: triton.get_model_metadata("fan", "7", headers=_key()))
    assert metadata.status() == "404"


@pytest.mark.parametrize(
    ("model", "make_inputs", "parameters", "problem"),
    [
        ("fan", lambda: [_bytes_input(b"RIFF not audio at all")], None, "decode"),
        ("fan", lambda: [_number_input("samples", np.zeros(RATE), binary=True)], None,
         "sample_rate"),
        ("fan", lambda: [_number_input("samples", np.zeros((2, RATE)), binary=True)],
         {"sample_rate": RATE}, "mono"),
        ("fan", lambda: [_number_input("wave", np.zeros(RATE), binary=True)], None, "'audio'"),
        ("press", lambda: [_number_input("samples", np.zeros((50, 3)), binary=True)], None,
         "channels"),
        ("press", lambda: [_bytes_input(b"x", "samples")], None, "FP32 [steps"),
        ("press", lambda: [_number_input("samples", np.zeros((5, CHANNELS)), binary=False)],
         None, "window"),
    ],
    ids=["not-audio", "no-rate", "two-rows", "wrong-name", "wrong-channels", "bytes-to-windows",
         "too-short"],
)  # fmt: skip
def test_unusable_inputs_are_400_with_the_reason(
    triton: Any, model: str, make_inputs: Any, parameters: Any, problem: str
) -> None:
    refusal = _refusal(
        lambda: triton.infer(model, make_inputs(), headers=_key(), parameters=parameters)
    )
    assert refusal.status() == "400"
    assert problem in refusal.message()


def test_malformed_requests_are_400(http: httpx.Client) -> None:
    not_json = http.post("/v2/models/press/infer", content=b"{", headers={"Content-Type": "a"})
    assert not_json.status_code == 400
    assert "not an inference request" in not_json.json()["error"]
    short = {"inputs": [{"name": "samples", "shape": [3, CHANNELS], "datatype": "FP32",
                         "data": [1.0, 2.0]}]}  # fmt: skip
    answer = http.post("/v2/models/press/infer", json=short)
    assert answer.status_code == 400
    assert "do not fill shape [3, 4]" in answer.json()["error"]
    wanted = {**short, "outputs": [{"name": "verdict"}]}
    wanted["inputs"][0]["data"] = [0.0] * 3 * CHANNELS
    unknown_output = http.post("/v2/models/press/infer", json=wanted)
    assert unknown_output.status_code == 400


def test_errors_from_outside_the_routes_take_the_v2_shape(server: LiveServer) -> None:
    no_key = httpx.post(f"{server.url}/v2/models/fan/infer", json={"inputs": []})
    assert no_key.status_code == 401
    assert set(no_key.json()) == {"error"}
    assert "API key" in no_key.json()["error"]
    too_large = httpx.post(
        f"{server.url}/v2/models/fan/infer", content=b"0" * (MAX_BODY + 1), headers=_key()
    )
    assert too_large.status_code == 413
    assert "larger than the limit" in too_large.json()["error"]
    # /v1 keeps its own shape.
    v1 = httpx.get(f"{server.url}/v1/models")
    assert set(v1.json()) == {"detail"}


def test_a_client_without_the_key_is_refused(server: LiveServer) -> None:
    client = tritonhttp.InferenceServerClient(server.url.removeprefix("http://"))
    try:
        refusal = _refusal(lambda: client.get_model_metadata("fan"))
    finally:
        client.close()
    assert refusal.status() == "401"
    assert "API key" in refusal.message()
