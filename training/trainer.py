"""Lightning Trainer construction: CPU here, GPU with bf16 mixed precision when present."""

from __future__ import annotations

import logging
import sys
import warnings

import lightning.pytorch as pl
import torch

from custintel.config import TrainSection


def resolve_accelerator(cfg: TrainSection) -> str:
    if cfg.accelerator == "auto":
        return "gpu" if torch.cuda.is_available() else "cpu"
    return cfg.accelerator


def make_trainer(cfg: TrainSection, max_epochs: int, callbacks: list | None = None,
                 validate: bool = True) -> pl.Trainer:
    accelerator = resolve_accelerator(cfg)
    # Lightning re-raises its own loggers to INFO on import; keep run output to what matters.
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*LeafSpec.*")
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    return pl.Trainer(
        accelerator=accelerator,
        devices=1,
        precision="bf16-mixed" if accelerator == "gpu" else "32-true",
        max_epochs=max_epochs,
        callbacks=callbacks or [],
        logger=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        enable_progress_bar=sys.stderr.isatty(),
        limit_val_batches=1.0 if validate else 0,
        num_sanity_val_steps=0,
        deterministic=True,
    )
