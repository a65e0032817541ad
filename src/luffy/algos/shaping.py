"""Off-policy importance-weight shaping f(p) (paper §3.2, Eq. 6–8; method §1.3–§1.4).

With the teacher probability treated as 1 (π_φ ≡ 1, as in the released data), the off-policy
"importance ratio" of a trace token is the current policy's probability p = π_θ(y_t); the loss
uses −Â·f(p) and is never clipped. Each shaping maps p ∈ (0, 1] (float[...]) to a weight of the same
shape and is differentiable through p (nothing is stop-gradded, as in the reference):

* ``luffy``    f(p) = p / (p + γ), γ > 0 — the paper's regularized IS shaping (γ = 0.1 in the run).
               ∂[−Â f(p)]/∂log p = −Â·γp/(p+γ)², peaking at p = γ.
* ``identity`` f(p) = p — the unshaped mixed-policy ablation (Table 4 "Mixed-Policy RL").
* ``pow``      f(p) = p^k (reference ``pow``).
* ``sqrt``     f(p) = √p (reference ``square_root``).

The same functions give the "on-policy + shaping" ablation ratio f(p)/f(p_old) (method §1.7,
marked [inferred] there).

Parameters belong to their shaping. Each function is registered in ``SHAPINGS`` together with a
frozen pydantic model of its parameters (a ``ShapingParams`` subclass whose ``name`` is the
registered name); the model's fields other than ``name`` are exactly the function's keyword
arguments. In a config, ``loss.shaping`` is either a bare name (parameters at their defaults) or
a mapping with a ``name`` and that shaping's parameters::

    shaping: identity                     # f(p) = p
    shaping: luffy                        # f(p) = p/(p+0.1)
    shaping: {name: luffy, gamma: 0.05}   # f(p) = p/(p+0.05)
    shaping: {name: pow, k: 2.0}          # f(p) = p²

A parameter the named shaping does not take is an error (``{name: identity, gamma: 0.5}``).
Under ``inherit:`` a bare name replaces the parent's mapping whole, while a mapping merges key by
key into the parent's — so switching to another shaping in a child file is written as a bare name
or as a complete mapping of a shaping with the same parameter names.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .registry import Registry

SHAPINGS: Registry = Registry("shaping")


class ShapingParams(BaseModel):
    """Base of the per-shaping parameter models: ``name`` selects the function in ``SHAPINGS``,
    every other field is one of its keyword arguments."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str

    def kwargs(self) -> dict[str, float]:
        """The function's keyword arguments (every field but ``name``)."""
        return {k: getattr(self, k) for k in type(self).model_fields if k != "name"}

    def __call__(self, p: torch.Tensor) -> torch.Tensor:
        """f(p) with these parameters: float[...] → float[...]."""
        return SHAPINGS.get(self.name)(p, **self.kwargs())


def parse_shaping(value: object) -> ShapingParams:
    """A ``loss.shaping`` value → its typed parameters.

    ``value`` is a ``ShapingParams`` (returned as is), a registered name, or a mapping with a
    ``name`` key and that shaping's parameters. Raises a one-line ``ValueError`` naming the
    offending name or key: unknown names list the valid ones, unknown parameters list the ones
    the shaping takes.
    """
    if isinstance(value, ShapingParams):
        return value
    if isinstance(value, str):
        name, given = value, {}
    elif isinstance(value, Mapping):
        given = dict(value)
        if "name" not in given:
            raise ValueError(f"shaping: a mapping needs a 'name' (one of: {', '.join(SHAPINGS.names())}), "
                             f"got keys {sorted(map(str, given))}")
        name = given.pop("name")
    else:
        raise ValueError(f"shaping: expected a name or a mapping with a 'name', got {type(value).__name__}")
    model = SHAPINGS.params(name) or ShapingParams
    takes = [k for k in model.model_fields if k != "name"]
    for key in given:
        if key not in takes:
            have = f"its parameters: {', '.join(takes)}" if takes else "it has no parameters"
            raise ValueError(f"shaping {name!r} takes no parameter {key!r} ({have})")
    try:
        return model(name=name, **given)
    except ValidationError as e:
        err = e.errors()[0]
        msg = str(err["ctx"]["error"]) if err["type"] == "value_error" else err["msg"]
        raise ValueError(f"shaping {name!r}: {'.'.join(map(str, err['loc']))}: {msg}") from None


# ----------------------------------------------------------------------------------------------
# shapings: (p float[...], **params) -> f(p) float[...]


class LuffyShaping(ShapingParams):
    name: Literal["luffy"] = "luffy"
    gamma: float = Field(0.1, description="γ of f(p) = p/(p+γ); must be > 0 (0.1 in the paper run)")

    @field_validator("gamma")
    @classmethod
    def _gamma_positive(cls, v: float) -> float:
        if not v > 0:
            raise ValueError(f"gamma must be > 0 (f(p)=p/(p+gamma)), got {v}")
        return v


@SHAPINGS.register("luffy", params=LuffyShaping)
def shape_luffy(p: torch.Tensor, *, gamma: float) -> torch.Tensor:
    """f(p) = p/(p+γ) (paper Eq. 6)."""
    return p / (p + gamma)


class IdentityShaping(ShapingParams):
    name: Literal["identity"] = "identity"


@SHAPINGS.register("identity", params=IdentityShaping)
def shape_identity(p: torch.Tensor) -> torch.Tensor:
    """f(p) = p: plain mixed-policy off-policy term with π_φ = 1."""
    return p


class PowShaping(ShapingParams):
    name: Literal["pow"] = "pow"
    k: float = Field(0.5, gt=0, description="exponent k of f(p) = p^k")


@SHAPINGS.register("pow", params=PowShaping)
def shape_pow(p: torch.Tensor, *, k: float) -> torch.Tensor:
    """f(p) = p^k."""
    return p.pow(k)


class SqrtShaping(ShapingParams):
    name: Literal["sqrt"] = "sqrt"


@SHAPINGS.register("sqrt", params=SqrtShaping)
def shape_sqrt(p: torch.Tensor) -> torch.Tensor:
    """f(p) = √p."""
    return p.sqrt()
