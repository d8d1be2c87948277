"""Discrete regression as in TD-MPC2: targets are symlog-squashed and spread over two adjacent bins
(two-hot); a head predicts logits over the bins and is trained with cross-entropy (paper eq. 5-6)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def symlog(x: torch.Tensor) -> torch.Tensor:
    return torch.sign(x) * torch.log1p(x.abs())


def symexp(x: torch.Tensor) -> torch.Tensor:
    return torch.sign(x) * (torch.exp(x.abs()) - 1)


class TwoHot:
    def __init__(self, num_bins: int = 101, vmin: float = -10.0, vmax: float = 10.0) -> None:
        if num_bins < 2 or vmin >= vmax:
            raise ValueError("two-hot needs at least two bins and vmin < vmax")
        self.num_bins, self.vmin, self.vmax = num_bins, vmin, vmax
        self.bin_size = (vmax - vmin) / (num_bins - 1)
        self.bins = torch.linspace(vmin, vmax, num_bins)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """(...,) real values -> (..., num_bins) probabilities, in symlog space."""
        y = symlog(x).clamp(self.vmin, self.vmax)
        pos = (y - self.vmin) / self.bin_size
        lo = pos.floor().long().clamp(0, self.num_bins - 1)
        hi = (lo + 1).clamp(max=self.num_bins - 1)
        w_hi = (pos - lo.float()).clamp(0.0, 1.0)
        out = torch.zeros(*x.shape, self.num_bins, dtype=torch.float32, device=x.device)
        out.scatter_add_(-1, lo.unsqueeze(-1), (1 - w_hi).unsqueeze(-1))
        out.scatter_add_(-1, hi.unsqueeze(-1), w_hi.unsqueeze(-1))
        return out

    def decode(self, logits: torch.Tensor) -> torch.Tensor:
        """(..., num_bins) logits -> (...,) expected real value."""
        probs = F.softmax(logits, -1)
        return symexp((probs * self.bins.to(logits.device)).sum(-1))

    def loss(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Cross-entropy against the two-hot target, per element (...,)."""
        return -(self.encode(target) * F.log_softmax(logits, -1)).sum(-1)
