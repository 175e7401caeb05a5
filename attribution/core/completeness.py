"""What the attributions must add up to: the score, the target and the integration error.

With f the pooled embedding and r_x the reference input of text x, the attribution matrix
sums to the target (f(a) - f(r_a)) . (f(b) - f(r_b)) / norm as the quadrature converges
(norm = |e_a| |e_b| for cosine, 1 for dot, e the compared embeddings). The score is the
similarity of the compared embeddings: f in approximate mode, f - f(r) in exact mode.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..errors import InputError


@dataclass(frozen=True)
class Completeness:
    """score, target (what sum(A) converges to) and the norm A is divided by; all floats.

    model_score is the similarity of the model's own embeddings f(a), f(b): the score in
    approximate mode, and in exact mode what the model itself would say (not what is explained).
    """

    score: float
    target: float
    norm: float
    model_score: float = math.nan

    @property
    def reference_terms(self) -> float:
        """score - target: the part of the score no token pair explains."""
        return self.score - self.target

    def relative_error(self, attribution_sum: float) -> float:
        """|attribution_sum - target| / |target| (0 when both are 0, inf when only the target is)."""
        return relative_error(attribution_sum - self.target, self.target)


def completeness(
    f_a: torch.Tensor, f_ref_a: torch.Tensor, f_b: torch.Tensor, f_ref_b: torch.Tensor, mode: str, similarity: str
) -> Completeness:
    """From the (D,) embeddings of both texts and their references."""
    delta_a, delta_b = (f_a - f_ref_a).double(), (f_b - f_ref_b).double()
    plain_a, plain_b = f_a.double(), f_b.double()
    emb_a, emb_b = (delta_a, delta_b) if mode == "exact" else (plain_a, plain_b)
    norm = float(emb_a.norm() * emb_b.norm()) if similarity == "cos" else 1.0
    if norm == 0.0:
        raise InputError("An embedding is zero, so cosine similarity is undefined: try mode 'approximate' or 'dot'.")
    plain_norm = float(plain_a.norm() * plain_b.norm()) if similarity == "cos" else 1.0
    model_score = float(plain_a @ plain_b) / plain_norm if plain_norm != 0.0 else math.nan
    return Completeness(
        score=float(emb_a @ emb_b) / norm, target=float(delta_a @ delta_b) / norm, norm=norm, model_score=model_score
    )


def relative_error(error: float, target: float) -> float:
    """|error| / |target|, 0 when both are 0 and inf when only the target is."""
    if target != 0:
        return abs(error) / abs(target)
    return 0.0 if error == 0 else math.inf
