"""Every code block of README.md and docs/*.md, run as a reader would paste it: shell blocks with
bash and Python blocks with this interpreter, from the project root, against one real `auscult
serve` on a free port serving a copy of the shipped bundle. Commands that run until stopped or
train on whole data sets are checked statically instead; JSON and YAML samples must parse; stated
results are asserted."""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from service.api.schemas import AnomalyRunOut
from tests.bundle_factory import make_windows_bundle
from tests.docs.examples import (
    PROJECT_ROOT,
    CodeBlock,
    all_code_blocks,
    is_assignment_only,
    shell_commands,
)
from tests.docs.static_checks import check_python, check_shell
from tests.realdata import DATA_DIR
from tests.server import ServeProcess, serve_process
from tests.service.clips import clip

BLOCKS = all_code_blocks()
_DOCS_HOST = "localhost:8000"
_DOCS_DATA = "../shared/data"
_DATA_PATH = re.compile(r"\.\./shared/data/([^\s\"'`)]+)")
_BLOCK_TIMEOUT_S = 120

# (file, text the block holds): why the block cannot run in a test; it is checked statically.
STATIC: dict[tuple[str, str], str] = {
    ("README.md", "make serve"): "serves until stopped; `make test` runs the whole suite",
    ("docs/TRAINING.md", "auscult train audio"): "trains on a whole data set (minutes)",
    ("docs/TRAINING.md", "train_audio_bundle("): "trains on a whole data set (minutes)",
    ("docs/RESULTS.md", "auscult train audio"): "trains on a whole data set (minutes)",
    ("docs/TRAINING.md", "auscult train windows"): "trains on a whole data set (minutes)",
    ("docs/OPERATIONS.md", "docker compose"): "needs a Docker engine",
    ("docs/OPERATIONS.md", "docker build"): "needs a Docker engine",
    ("docs/OPERATIONS.md", "install-test-tools"): "installs system packages and runs a test suite",
    ("docs/HARDENING.md", "benchmarks.hardening_payloads"): "benchmarks that run for minutes",
    ("docs/OPERATIONS.md", "--log-format json"): "serves until stopped",
    ("docs/FEEDBACK.md", "auscult retrain --model"): "fine-tunes a bundle on labelled events "
    "of a plant's own event store (minutes)",
    ("docs/OPERATIONS.md", "auscult serve-ray"): "starts a Ray instance and serves until stopped; "
    "tests/deployment/test_ray_serve.py deploys the same application on a local Ray cluster",
    (
        "docs/OPERATIONS.md",
        "kubectl apply",
    ): "needs a Kubernetes cluster with the KubeRay operator; "
    "tests/deployment/test_ray_manifest.py checks the manifest statically",
    ("docs/API.md", "auscult bridge mqtt"): "needs an MQTT broker; tests/service/mqtt/test_cli.py "
    "runs the command against Mosquitto",
    ("docs/API.md", "aiomqtt.Client("): "needs an MQTT broker and the bridge; "
    "tests/service/mqtt/test_docs_example.py runs it against Mosquitto",
}

# (file, text the block holds): blocks that run although they name a long-running command,
# because they are small by construction (why); they take precedence over STATIC.
SMALL: dict[tuple[str, str], str] = {
    ("docs/TRAINING.md", "--model pca --window 50"): "fits without epochs on 8,000 generated "
    "steps, without a report: about 40 s on the shared machine",
}

# A block holding one of these and not listed above fails instead of running: it would run for
# minutes, or write into the user's models/ folder.
_LONG_RUNNING = re.compile(
    r"\bauscult (serve|serve-ray|train|evaluate|retrain|bridge)\b|\bkubectl\b|\bray start\b|"
    r"\bmake (serve|test|models)\b|\bdocker\b|"
    r"train_\w+_bundle\(|-m benchmarks\.|\bpytest\b"
)

# (file, text, replacement, why): changes made to a block before it runs, beyond the server's
# address and the data folder.
SPEEDUPS: list[tuple[str, str, str, str]] = [
    (
        "docs/API.md",
        "await asyncio.sleep(0.1)",
        "await asyncio.sleep(0.005)",
        "20 times a microphone's pace (a 75 s flight would take 75 s); a busy server keeps up",
    ),
]


def _json_values(text: str) -> list[Any]:
    """The JSON documents printed one after another (curl prints answers without newlines)."""
    decoder = json.JSONDecoder()
    values: list[Any] = []
    index = 0
    while True:
        while index < len(text) and text[index].isspace():
            index += 1
        if index == len(text):
            return values
        value, index = decoder.raw_decode(text, index)
        values.append(value)


def _stated_number(path: str, pattern: str) -> str:
    """The number a sentence of a doc states, as written ("27", "0.9")."""
    text = " ".join((PROJECT_ROOT / path).read_text(encoding="utf-8").split())
    found = re.search(pattern, text)
    assert found is not None, f"{path} no longer says {pattern!r}: update this test"
    return found["number"]


def _assert_about(stated: str, served: float) -> None:
    """`about 27` holds for 26.5 to 27.5, `about 0.9` for 0.85 to 0.95."""
    decimals = len(stated.partition(".")[2])
    assert abs(served - float(stated)) <= 0.5 * 10**-decimals, (
        f"stated about {stated}, served {served}"
    )


def _readme_score(stdout: str, outputs: Path) -> None:
    (verdict,) = _json_values(stdout)
    assert verdict["anomaly"] is True
    stated = _stated_number(
        "README.md", r"`\"anomaly\": true` with a `ratio` of about (?P<number>[\d.]*\d)"
    )
    _assert_about(stated, verdict["ratio"])


def _api_scores(stdout: str, outputs: Path) -> None:
    verdicts = _json_values(stdout)
    assert [v["model"] for v in verdicts] == ["uav-propeller"] * 3
    # The same flight as a raw body (with a station) and as a form upload (without).
    assert {**verdicts[0], "station": None} == verdicts[1]
    assert [v["anomaly"] for v in verdicts] == [True, True, False]


def _api_models(stdout: str, outputs: Path) -> None:
    listing, one = _json_values(stdout)
    assert "uav-propeller" in [m["name"] for m in listing["models"]]
    assert (one["name"], one["status"]) == ("uav-propeller", "serving")


def _api_reload(stdout: str, outputs: Path) -> None:
    """The fields of the documented answer (after a new bundle came in) are all served."""
    (answer,) = _json_values(stdout)
    sample = json.loads(_json_sample("docs/API.md", '"loaded"').text)
    assert sample.keys() <= answer.keys()
    assert sample["loaded"][0].keys() <= answer["models"][0].keys()


def _api_probes(stdout: str, outputs: Path) -> None:
    alive, ready = _json_values(stdout)
    assert alive == {"status": "alive"}
    assert ready["status"] == "ready"


def _api_metrics(stdout: str, outputs: Path) -> None:
    lines = stdout.splitlines()
    assert lines
    assert all(line.startswith("auscult_scored_total") for line in lines)


def _api_python_score(stdout: str, outputs: Path) -> None:
    first, worst = stdout.splitlines()
    assert first.startswith("True ")
    assert re.fullmatch(r"worst block [\d.]+-[\d.]+ s, most off around \d+ Hz", worst), worst


def _api_python_stream(stdout: str, outputs: Path) -> None:
    lines = stdout.splitlines()
    assert lines[0].startswith("threshold ")
    assert re.fullmatch(r" +0\.00 s +[\d.]+ +(ANOMALY|ok)", lines[1]), lines[1]
    end = lines[-1]
    assert "'type': 'end'" in end, end
    assert "error" not in stdout


def _api_python_metrics(stdout: str, outputs: Path) -> None:
    assert "'model': 'uav-propeller'" in stdout


def _readme_series(stdout: str, outputs: Path) -> None:
    first, *runs = stdout.splitlines()
    assert re.fullmatch(r"\d+ of 2000 steps anomalous", first), first
    assert all(re.fullmatch(r"steps \d+-\d+, mostly \S+", run) for run in runs), runs


def _readme_clip(stdout: str, outputs: Path) -> None:
    assert re.fullmatch(r"anomaly True, ratio [\d.]+, worst block [\d.]+-[\d.]+ s\n", stdout), (
        stdout
    )


def _api_windows(stdout: str, outputs: Path) -> None:
    (verdict,) = _json_values(stdout)
    assert (verdict["model"], verdict["station"], verdict["steps"]) == ("smd-1-2", "line-1", 300)
    assert len(verdict["scores"]) == len(verdict["anomalies"]) == 300
    assert all(len(run["channels"]) <= 2 for run in verdict["runs"])
    sample = json.loads(_json_sample("docs/API.md", '"anomalous_steps"').text)
    assert sample.keys() <= verdict.keys()  # every documented field is served
    # The served model of a run (the stand-in bundle may flag none of these 300 steps).
    assert sample["runs"][0].keys() <= set(AnomalyRunOut.model_fields)


def _api_python_windows(stdout: str, outputs: Path) -> None:
    first, *runs = stdout.splitlines()
    assert re.fullmatch(r"1000 steps, \d+ anomalous", first), first
    assert all(re.fullmatch(r"steps \d+-\d+: peak [\d.]+ x threshold, from .+", r) for r in runs)


def _api_python_sensor_stream(stdout: str, outputs: Path) -> None:
    ready, end = stdout.splitlines()
    assert re.fullmatch(r"window 100 stride 50 threshold [\d.e+-]+", ready), ready
    assert end.startswith("500 steps scored; {'type': 'end', 'steps_received': 500"), end


def _api_client_async_audio(stdout: str, outputs: Path) -> None:
    lines = stdout.splitlines()
    assert len(lines) >= 9, stdout  # 10 s in blocks of 1.024 s
    assert all(re.fullmatch(r" *[\d.]+ s  ratio +[\d.]+  (ANOMALY|ok)", line) for line in lines)
    assert lines[0].startswith(" 0.00 s"), lines[0]
    assert "ANOMALY" in stdout


def _api_client_live_rows(stdout: str, outputs: Path) -> None:
    assert stdout.splitlines()[-1] == "400 steps judged", stdout


def _training_csv(stdout: str, outputs: Path) -> None:
    point, segments, recall, false_alarms = stdout.splitlines()[-1].split()
    assert point == "false_alarm_rate"
    assert float(segments) == 1.0  # the doc says the clogged filter is alarmed
    assert 0 < float(recall) <= 1
    assert float(false_alarms) >= 0


def _operations_request_id(stdout: str, outputs: Path) -> None:
    assert stdout.strip().lower() == "x-request-id: line-1-0042", stdout


def _training_reports(stdout: str, outputs: Path) -> None:
    """TRAINING.md: each `auscult report` writes an index.html with its PNG figures."""
    for name in ("uav-report", "uav-flight"):
        assert (outputs / name / "index.html").is_file(), stdout
        assert list((outputs / name).glob("*.png")), stdout


# (file, text the block holds): a check of what the block prints or writes (under its outputs
# folder, the /tmp of the example), where the docs state it.
def _api_client_labels(stdout: str, _: Path) -> None:
    """The alarm just scored is among those labelled, and confirmed (its ratio is far above 2)."""
    assert "bay-3 anomaly" in stdout.splitlines(), stdout


EXPECTED: dict[tuple[str, str], Callable[[str, Path], None]] = {
    ("README.md", "2_broken/1010_ccw_f8_1.flac"): _readme_score,
    ("docs/API.md", '-F "file=@$CLIP"'): _api_scores,
    ("docs/API.md", 'curl -s "localhost:8000/v1/models/$MODEL"'): _api_models,
    ("docs/API.md", "/v1/models/reload"): _api_reload,
    ("docs/API.md", "localhost:8000/healthz"): _api_probes,
    ("docs/API.md", "^auscult_scored_total"): _api_metrics,
    ("docs/API.md", "most off around"): _api_python_score,
    ("docs/API.md", "async def stream("): _api_python_stream,
    ("docs/API.md", "text_string_to_metric_families"): _api_python_metrics,
    ("docs/TRAINING.md", "auscult report models/uav-propeller"): _training_reports,
    ("README.md", 'score_series("smd-1-2"'): _readme_series,
    ("README.md", 'score_file("uav-propeller", FLIGHT'): _readme_clip,
    ("docs/API.md", "/windows?station=line-1&top_channels=2"): _api_windows,
    ("docs/API.md", "x threshold, from"): _api_python_windows,
    ("docs/API.md", "steps scored;"): _api_python_sensor_stream,
    ("docs/API.md", "steps judged"): _api_client_live_rows,
    ("docs/API.md", "async def microphone("): _api_client_async_audio,
    ("docs/API.md", "auscult.label_event(event.id"): _api_client_labels,
    ("docs/TRAINING.md", "--model pca --window 50"): _training_csv,
    ("docs/OPERATIONS.md", "X-Request-ID: line-1-0042"): _operations_request_id,
}


def _json_sample(path: str, holding: str) -> CodeBlock:
    (block,) = [b for b in BLOCKS if b.path == path and b.kind == "json" and holding in b.text]
    return block


def _matching(table: dict[tuple[str, str], Any], block: CodeBlock) -> list[Any]:
    return [
        value for (path, text), value in table.items() if path == block.path and text in block.text
    ]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    """`auscult serve` on a free port with a copy of the shipped bundle, one for the module."""
    folder = tmp_path_factory.mktemp("docs-server")
    models = folder / "models"
    shutil.copytree(PROJECT_ROOT / "models" / "uav-propeller", models / "uav-propeller")
    # No sensor bundle ships: the docs' `smd-1-2` (SMD machine-1-2's 38 channels, train windows'
    # default window and stride) is a small real bundle built here, never one of models/.
    make_windows_bundle(models / "smd-1-2", name="smd-1-2", channels=38, window=100, stride=50)
    with serve_process(models, folder / "serve.log", env={"AUSCULT_DRAIN_SECONDS": "0"}) as running:
        # The metrics examples read counts that exist once a clip has been scored; a generated
        # clip scores one whether or not the real data (the other examples' clips) are present.
        httpx.post(
            f"{running.url}/v1/models/uav-propeller/score",
            content=clip(2.0),
            headers={"Content-Type": "audio/wav"},
            timeout=60,
        ).raise_for_status()
        yield running


def _rewritten(text: str, block: CodeBlock, server: ServeProcess, outputs: Path) -> str:
    """The block as it runs here: against the test's server, on DATA_DIR, writing what it writes
    under /tmp into the test's own folder, with the SPEEDUPS made."""
    text = text.replace(_DOCS_HOST, server.url.removeprefix("http://"))
    text = re.sub(r"(?<![\w./])/tmp/", f"{outputs}/", text)
    if DATA_DIR.resolve() != (PROJECT_ROOT.parent / "shared" / "data").resolve():
        text = text.replace(_DOCS_DATA, str(DATA_DIR))
    for path, old, new, _ in SPEEDUPS:
        if path == block.path:
            text = text.replace(old, new)
    return text


def _preamble(block: CodeBlock) -> dict[str, str]:
    """The variables that the assignment-only shell blocks above this one in its file set."""
    variables: dict[str, str] = {}
    for earlier in BLOCKS:
        if earlier.path == block.path and earlier.line < block.line and earlier.kind == "shell":
            script = shell_commands(earlier)
            if is_assignment_only(script):
                for word in shlex.split(script, comments=True):
                    name, value = word.split("=", 1)
                    variables[name] = value
    return variables


def _skip_without_data(text: str, variables: dict[str, str]) -> None:
    used = [v for name, v in variables.items() if re.search(rf"\${{?{name}\b", text)]
    for relative in _DATA_PATH.findall("\n".join([text, *used])):
        if not (DATA_DIR / relative).exists():
            pytest.skip(f"real data {relative!r} not found under {DATA_DIR} (set AUSCULT_DATA_DIR)")


def _run(command: list[str], stdin: str) -> str:
    environment = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    }
    process = subprocess.Popen(
        command,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=PROJECT_ROOT,
        env=environment,
        text=True,
        start_new_session=True,  # a group of its own: whatever the example started ends with it
    )
    try:
        stdout, stderr = process.communicate(stdin, timeout=_BLOCK_TIMEOUT_S)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    assert process.returncode == 0, (
        f"exit {process.returncode}\n{stdin}\n--- stdout\n{stdout[-3000:]}"
        f"\n--- stderr\n{stderr[-3000:]}"
    )
    return stdout


def run_shell(
    block: CodeBlock, server: ServeProcess, outputs: Path, *, replace: tuple[str, str] | None = None
) -> str:
    """Run a shell block with bash, every command required to succeed; curl fails on HTTP errors."""
    variables = _preamble(block)
    script = shell_commands(block)
    if replace is not None:
        script = script.replace(*replace)
    _skip_without_data(script, variables)
    lines = [
        "set -eo pipefail",
        'curl() { command curl --fail-with-body --show-error "$@"; }',
        *(f"{name}={shlex.quote(value)}" for name, value in variables.items()),
        script,
    ]
    return _run(["bash", "-s"], _rewritten("\n".join(lines), block, server, outputs))


def run_python(block: CodeBlock, server: ServeProcess, outputs: Path) -> str:
    _skip_without_data(block.text, {})
    return _run([sys.executable, "-"], _rewritten(block.text, block, server, outputs))


@pytest.mark.parametrize("block", BLOCKS, ids=[block.id for block in BLOCKS])
def test_example(block: CodeBlock, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    """Run, statically check or parse one block; then check what it prints where the docs say."""
    assert block.kind is not None, (
        f"{block.id}: unknown language {block.language!r}: classify it in tests/docs/examples.py"
    )
    small = _matching(SMALL, block)
    static = [] if small else _matching(STATIC, block)
    if static:
        if block.kind == "python":
            problems = check_python(block.text)
        else:
            problems = check_shell(shell_commands(block))
        if DATA_DIR.exists():  # the data an example names must be where it says
            problems += [
                f"../shared/data/{relative} does not exist"
                for relative in _DATA_PATH.findall(block.text)
                if not (DATA_DIR / relative).exists()
            ]
        assert not problems, "\n".join(problems)
        return
    if block.kind == "json":
        try:
            json.loads(block.text)
        except json.JSONDecodeError:
            for line in block.text.splitlines():  # JSON lines
                if line.strip():
                    json.loads(line)
        return
    if block.kind == "yaml":
        yaml.safe_load(block.text)
        return
    if block.kind == "other":
        return
    long_running = None if small else _LONG_RUNNING.search(block.text)
    assert long_running is None, (
        f"{block.id} runs {long_running[0]!r}: list it in STATIC to check it statically"
    )
    server: ServeProcess = request.getfixturevalue("server")
    if block.kind == "shell":
        stdout = run_shell(block, server, tmp_path)
    else:
        stdout = run_python(block, server, tmp_path)
    for check in _matching(EXPECTED, block):
        check(stdout, tmp_path)


def test_readme_intact_flight(server: ServeProcess, tmp_path: Path) -> None:
    """README: "The intact flight `normal/ccw_f8_5.flac` scores a ratio of about 0.9": its
    scoring example, run on that flight."""
    stated = _stated_number(
        "README.md", r"`normal/ccw_f8_5\.flac` scores a ratio of about (?P<number>[\d.]*\d)"
    )
    broken = "2_broken/1010_ccw_f8_1.flac"
    (block,) = [b for b in BLOCKS if b.path == "README.md" and broken in b.text]
    output = run_shell(block, server, tmp_path, replace=(broken, "normal/ccw_f8_5.flac"))
    (verdict,) = _json_values(output)
    assert verdict["anomaly"] is False
    _assert_about(stated, verdict["ratio"])


def _matches_sample(sample: Any, actual: Any, where: str = "") -> None:
    """Every field of a documented answer holds the served value (floats to 1e-4 relative; a
    documented list is the start of the served one)."""
    if isinstance(sample, dict):
        for key, value in sample.items():
            assert key in actual, f"{where}.{key} is not in the answer"
            _matches_sample(value, actual[key], f"{where}.{key}")
    elif isinstance(sample, list):
        assert len(sample) <= len(actual), where
        for index, value in enumerate(sample):
            _matches_sample(value, actual[index], f"{where}[{index}]")
    elif isinstance(sample, float):
        assert math.isclose(sample, actual, rel_tol=1e-4), (
            f"{where}: documented {sample}, served {actual}"
        )
    else:
        assert sample == actual, f"{where}: documented {sample!r}, served {actual!r}"


def test_api_score_answer_is_the_served_one(server: ServeProcess) -> None:
    """docs/API.md shows the answer for $CLIP: it is what the service answers for it."""
    sample_block = _json_sample("docs/API.md", '"worst_block"')
    sample = json.loads(sample_block.text)
    clip = _preamble(sample_block)["CLIP"]
    _skip_without_data(clip, {})
    path = Path(clip.replace(_DOCS_DATA, str(DATA_DIR)))
    response = httpx.post(
        f"{server.url}/v1/models/{sample['model']}/score",
        params={"station": sample["station"]},
        files={"file": (path.name, path.read_bytes())},
        timeout=60,
    )
    response.raise_for_status()
    _matches_sample(sample, response.json())


@pytest.mark.parametrize(
    "table", [STATIC, SMALL, EXPECTED, {(p, t): None for p, t, _, _ in SPEEDUPS}]
)
def test_every_table_entry_names_a_block(table: dict[tuple[str, str], Any]) -> None:
    """An entry that no longer matches a block would silently stop checking anything."""
    for path, text in table:
        assert any(b.path == path and text in b.text for b in BLOCKS), (
            f"no block of {path} holds {text!r}"
        )
