"""LightningModule wrapping MultiTaskNet: BCE churn loss + weighted ZILN value loss."""

from __future__ import annotations

import lightning.pytorch as pl
import numpy as np
import torch
from torch.nn import functional as F

from training.metrics import tuning_score
from training.network import MultiTaskNet, NetConfig, ziln_expected, ziln_loss


class CustomerModel(pl.LightningModule):
    def __init__(self, n_features: int, hidden_dim: int = 64, n_layers: int = 2, dropout: float = 0.1,
                 lr: float = 1e-3, weight_decay: float = 1e-5, value_loss_weight: float = 1.0,
                 spend_log_mean: float = 0.0, lr_schedule: str = "constant") -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = MultiTaskNet(NetConfig(n_features, hidden_dim, n_layers, dropout))
        # Start the lognormal at the typical positive spend: with mu at 0 early epochs predict
        # absurd spends through exp(mu + sigma^2 / 2).
        with torch.no_grad():
            self.net.value_head.bias[1] = spend_log_mean
        self._val_outputs: list[tuple[torch.Tensor, ...]] = []

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.net(x)

    def _common_step(self, batch, stage: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x, churned, spend = batch
        churn_logit, value_out = self(x)
        churn_loss = F.binary_cross_entropy_with_logits(churn_logit.float(), churned)
        value_loss = ziln_loss(value_out, spend)
        loss = churn_loss + self.hparams.value_loss_weight * value_loss
        self.log(f"{stage}_loss", loss, prog_bar=True, on_epoch=True, on_step=False, batch_size=len(x))
        return loss, churn_logit, value_out

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        return self._common_step(batch, "train")[0]

    def validation_step(self, batch, batch_idx: int) -> None:
        _, churn_logit, value_out = self._common_step(batch, "val")
        _, churned, spend = batch
        prob = torch.sigmoid(churn_logit.float())
        self._val_outputs.append((churned, spend, prob, ziln_expected(value_out)))

    def on_validation_epoch_end(self) -> None:
        churned, spend, prob, pred = (torch.cat(t).float().cpu().numpy() for t in zip(*self._val_outputs,
                                                                                      strict=True))
        self._val_outputs.clear()
        score = tuning_score(churned, spend, prob, np.nan_to_num(pred, nan=0.0, posinf=1e9))
        self.log("val_score", float(np.nan_to_num(score, nan=0.0)), prog_bar=True)

    def configure_optimizers(self):
        hp = self.hparams
        optimizer = torch.optim.AdamW(self.parameters(), lr=hp.lr, weight_decay=hp.weight_decay)
        if hp.lr_schedule == "constant":
            return optimizer
        # Annealed per step over the whole fit (max_epochs when tuning, the chosen epochs in the refit).
        steps = max(1, int(self.trainer.estimated_stepping_batches))
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}
