"""The service imports and serves with torch unavailable: it must never need it."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from tests.realdata import PROJECT_ROOT

_SCRIPT = textwrap.dedent(
    """
    import importlib.abc
    import sys
    from pathlib import Path


    class NoTorch(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] == "torch":
                raise ModuleNotFoundError(f"torch is blocked: {name}")
            return None


    # Refuse every `import torch`. (sys.modules["torch"] = None would also break scipy, which
    # looks up sys.modules["torch"].Tensor whenever the key exists.)
    sys.meta_path.insert(0, NoTorch())

    import httpx

    from service.config import Settings
    from tests.server import running_server
    from tests.service.clips import clip, small_audio_bundle

    models = Path(sys.argv[1])
    small_audio_bundle(models / "fan", name="fan")
    with running_server(Settings(models_dir=models, reload_poll_seconds=0)) as live:
        response = httpx.post(
            live.url + "/v1/models/fan/score",
            content=clip(1.0),
            headers={"Content-Type": "audio/wav"},
        )
    assert response.status_code == 200, response.text
    loaded = sorted(name for name, module in sys.modules.items()
                    if module is not None and name.split(".")[0] == "torch")
    assert not loaded, loaded
    print("served without torch")
    """
)


def test_the_service_serves_without_torch(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", _SCRIPT, str(tmp_path / "models")],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "served without torch" in result.stdout
