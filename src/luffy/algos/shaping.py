"""Off-policy importance-weight shaping f(p) (paper §3.2, Eq. 6–8; spec §1.3–§1.4).

With the teacher probability treated as 1 (π_φ ≡ 1, as in the released data), the off-policy
"importance ratio" of a trace token is the current policy's probability p = π_θ(y_t); the loss
uses −Â·f(p) and is never clipped. Each shaping maps p ∈ (0, 1] to a weight and is
differentiable through p (nothing is stop-gradded, as in the reference):

* ``luffy``    f(p) = p / (p + γ), γ > 0 — the paper's regularized IS shaping (γ = 0.1 in the run).
               ∂[−Â f(p)]/∂log p = −Â·γp/(p+γ)², peaking at p = γ.
* ``identity`` f(p) = p — the unshaped mixed-policy ablation (Table 4 "Mixed-Policy RL").
* ``pow``      f(p) = p^k (reference ``pow``; k = ``pow_k``).
* ``sqrt``     f(p) = √p (reference ``square_root``).

The same functions give the "on-policy + shaping" ablation ratio f(p)/f(p_old) (spec §1.7,
marked [inferred] there).
"""

from __future__ import annotations

import torch

from .registry import Registry

SHAPINGS: Registry = Registry("shaping")


@SHAPINGS.register("luffy")
def shape_luffy(p: torch.Tensor, *, gamma: float, **_: float) -> torch.Tensor:
    """f(p) = p/(p+γ) (paper Eq. 6)."""
    return p / (p + gamma)


@SHAPINGS.register("identity")
def shape_identity(p: torch.Tensor, **_: float) -> torch.Tensor:
    """f(p) = p: plain mixed-policy off-policy term with π_φ = 1."""
    return p


@SHAPINGS.register("pow")
def shape_pow(p: torch.Tensor, *, pow_k: float, **_: float) -> torch.Tensor:
    """f(p) = p^k."""
    return p.pow(pow_k)


@SHAPINGS.register("sqrt")
def shape_sqrt(p: torch.Tensor, **_: float) -> torch.Tensor:
    """f(p) = √p."""
    return p.sqrt()
