"""The multi-task network and the zero-inflated lognormal (ZILN) loss. Plain torch, no Lightning,
so serving imports only this."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.nn import functional as F


@dataclass(frozen=True)
class NetConfig:
    n_features: int
    hidden_dim: int = 64
    n_layers: int = 2
    dropout: float = 0.1

    def to_dict(self) -> dict:
        return asdict(self)


class MultiTaskNet(nn.Module):
    """Shared MLP encoder; a churn head (1 logit) and a ZILN value head (3 outputs)."""

    def __init__(self, cfg: NetConfig) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = cfg.n_features
        for _ in range(cfg.n_layers):
            layers += [nn.Linear(width, cfg.hidden_dim), nn.LayerNorm(cfg.hidden_dim), nn.GELU(),
                       nn.Dropout(cfg.dropout)]
            width = cfg.hidden_dim
        self.encoder = nn.Sequential(*layers)
        self.churn_head = nn.Linear(width, 1)
        self.value_head = nn.Linear(width, 3)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.encoder(x)
        return self.churn_head(h).squeeze(-1), self.value_head(h)


def ziln_loss(value_out: torch.Tensor, spend: torch.Tensor) -> torch.Tensor:
    """Negative log-likelihood of a zero-inflated lognormal (Wang, Liu & Miao 2019)."""
    logit, mu, sigma = _ziln_params(value_out)
    positive = (spend > 0).float()
    clf = F.binary_cross_entropy_with_logits(logit, positive)
    safe = torch.where(spend > 0, spend, torch.ones_like(spend))
    log_prob = torch.distributions.LogNormal(mu, sigma).log_prob(safe)
    reg = -(positive * log_prob).sum() / positive.sum().clamp(min=1.0)
    return clf + reg


def ziln_expected(value_out: torch.Tensor) -> torch.Tensor:
    """E[spend] = P(spend > 0) * exp(mu + sigma^2 / 2)."""
    logit, mu, sigma = _ziln_params(value_out)
    return torch.sigmoid(logit) * torch.exp(mu + 0.5 * sigma**2)


def _ziln_params(value_out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    value_out = value_out.float()
    logit, mu = value_out[..., 0], value_out[..., 1]
    sigma = F.softplus(value_out[..., 2]).clamp(min=1e-3, max=5.0)
    return logit, mu, sigma
