"""Export the scoring graph to ONNX: input `blocks` [N, D] with a dynamic batch, outputs `score`
[N] and `band_error` [N, n_mels], as docs/ARCHITECTURE.md specifies; and keep the torch weights
beside it (safetensors plus the architecture), which `auscult retrain` fine-tunes and the service
never reads."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import warnings
from pathlib import Path

import onnx
import torch
from safetensors.torch import load_file, save_file

from training.audio import model as architecture
from training.audio.model import BlockScorer

OPSET = 18
WEIGHTS_FILE = "weights.safetensors"
ARCHITECTURE_FILE = "architecture.json"
TORCH_FILES = (WEIGHTS_FILE, ARCHITECTURE_FILE)
_CHATTY_LOGGERS = ("torch.onnx", "torch.export", "torch.__trace", "torch._dynamo")


def export_onnx(scorer: BlockScorer, path: Path) -> Path:
    """Write the scorer as a single self-contained ONNX file with torch's dynamo exporter."""
    scorer.eval()
    example = torch.zeros(2, scorer.n_mels * scorer.frames_per_block)
    batch = torch.export.Dim("batch", min=1)
    # The exporter reports progress and optional-package notes on stdout, stderr and logging
    # (and torch.export traces at DEBUG); training prints its own summary.
    loggers = [logging.getLogger(name) for name in _CHATTY_LOGGERS]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        with (
            warnings.catch_warnings(),
            contextlib.redirect_stdout(io.StringIO()),
            contextlib.redirect_stderr(io.StringIO()),
        ):
            warnings.simplefilter("ignore")
            program = torch.onnx.export(
                scorer,
                (example,),
                input_names=["blocks"],
                output_names=["score", "band_error"],
                dynamic_shapes=({0: batch},),
                opset_version=OPSET,
                dynamo=True,
                verbose=False,
            )
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)
    if program is None:
        raise RuntimeError("torch.onnx.export returned no program")
    program.save(str(path), external_data=False)
    onnx.checker.check_model(str(path), full_check=True)
    return Path(path)


class TorchWeightsError(ValueError):
    """A bundle's torch weights are missing or do not rebuild the model; says why."""


def _architecture(scorer: BlockScorer) -> dict[str, int | str]:
    """Everything BlockScorer's constructor and module constants fix; the weights fix the rest
    (the latent_knn memory bank takes its saved size)."""
    return {
        "module": "training.audio.model.BlockScorer",
        "n_mels": scorer.n_mels,
        "frames_per_block": scorer.frames_per_block,
        "score": scorer.score,
        "hidden_units": architecture.HIDDEN_UNITS,
        "hidden_layers": architecture.HIDDEN_LAYERS,
        "latent_units": architecture.LATENT_UNITS,
    }


def export_torch(scorer: BlockScorer, bundle_dir: Path) -> tuple[Path, Path]:
    """Write the scorer's weights (standardisation buffers included) and the architecture that
    rebuilds it into `bundle_dir`."""
    weights = Path(bundle_dir) / WEIGHTS_FILE
    state = {name: value.detach().contiguous() for name, value in scorer.state_dict().items()}
    save_file(state, str(weights))
    config = Path(bundle_dir) / ARCHITECTURE_FILE
    config.write_text(json.dumps(_architecture(scorer), indent=2) + "\n", encoding="utf-8")
    return weights, config


def load_torch(bundle_dir: Path) -> BlockScorer:
    """The scorer saved by `export_torch`, in eval mode; TorchWeightsError when the bundle has no
    weights or they were saved for another architecture."""
    weights = Path(bundle_dir) / WEIGHTS_FILE
    config_path = Path(bundle_dir) / ARCHITECTURE_FILE
    if not weights.is_file() or not config_path.is_file():
        raise TorchWeightsError(
            f"bundle {bundle_dir} has no torch weights ({WEIGHTS_FILE}, {ARCHITECTURE_FILE}): it "
            "was written before bundles kept them; train it again with `auscult train audio`"
        )
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
        scorer = BlockScorer(
            int(config["n_mels"]), int(config["frames_per_block"]), config["score"]
        )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise TorchWeightsError(f"{config_path} is not a readable architecture: {exc}") from exc
    if config != _architecture(scorer):
        raise TorchWeightsError(
            f"{config_path} describes {config}, but this version builds {_architecture(scorer)}"
        )
    try:
        scorer.load_state_dict(load_file(str(weights)))
    except (OSError, RuntimeError) as exc:  # RuntimeError: missing keys or other shapes
        raise TorchWeightsError(f"cannot load {weights}: {exc}") from exc
    scorer.eval()
    return scorer
