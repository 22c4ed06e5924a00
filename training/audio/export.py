"""Export the scoring graph to ONNX: input `blocks` [N, D] with a dynamic batch, outputs `score`
[N] and `band_error` [N, n_mels], as docs/ARCHITECTURE.md specifies."""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from pathlib import Path

import onnx
import torch

from training.audio.model import BlockScorer

OPSET = 18
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
