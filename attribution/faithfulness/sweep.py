"""Perturbation sweep of one pair: remove each unit (token or word) of either text in turn, measure what the
score loses, and set that beside the attribution the map gives the unit.

loss = score(pair) - score(pair without the unit), in the units of the score (cosine or dot product); a
positive loss means the model needs the unit for its similarity. The map's attribution of the unit is its
row total (text A) or column total (text B). Rank agreement is Spearman's rho over the units of both texts
(ties get average ranks). All edits of the pair go through batched forward passes (PairScorer).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.stats import rankdata

from ..core.options import ExplainOptions, Limits, RunOptions
from ..models import LoadedModel
from ..result import Attribution
from .methods import DEFAULT_METHOD, method_label
from .scoring import DEFAULT_CHUNK, Op, check_op
from .units import PreparedPair, prepare, unit_attributions


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman's rank correlation with average ranks for ties; NaN for fewer than 2 values or a constant side."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if x.shape != y.shape:
        raise ValueError(f"{x.shape} and {y.shape} values")
    if len(x) < 2:
        return float("nan")
    rx, ry = rankdata(x) - (len(x) + 1) / 2, rankdata(y) - (len(y) + 1) / 2
    denominator = float(np.sqrt((rx * rx).sum() * (ry * ry).sum()))
    return float((rx * ry).sum() / denominator) if denominator > 0 else float("nan")


def descending_ranks(values: np.ndarray) -> np.ndarray:
    """1 for the largest value, average ranks for ties."""
    return rankdata(-np.asarray(values, dtype=np.float64))


@dataclass(frozen=True)
class SweepItem:
    """One unit removed: what the model lost without it next to what the map gives it."""

    side: str  # "a" | "b"
    index: int  # the unit's index among its text's units
    positions: tuple[int, ...]  # its token positions (rows of A / columns of B of the result)
    label: str
    attribution: float  # row total (A) or column total (B), score units
    score: float  # the score with the unit removed
    loss: float  # unedited score - score: what the model loses without the unit
    target_loss: float  # the same for the target (what the attributions sum to): the loss without reference terms
    attribution_rank: int  # 1 = the map's strongest unit (of both texts)
    loss_rank: int  # 1 = the unit whose removal costs the most
    disagrees: bool  # see Sweep.disagreement_rule

    def to_dict(self) -> dict[str, Any]:
        return {
            "side": self.side,
            "index": self.index,
            "positions": list(self.positions),
            "label": self.label,
            "attribution": self.attribution,
            "score": self.score,
            "loss": self.loss,
            "target_loss": self.target_loss,
            "attribution_rank": self.attribution_rank,
            "loss_rank": self.loss_rank,
            "disagrees": self.disagrees,
        }


@dataclass(frozen=True)
class Sweep:
    """A perturbation sweep of one pair for one attribution method.

    items: one per unit, A's units first then B's, in text order. spearman: rank agreement of attribution and
    loss over all units (NaN when undefined); spearman_a / spearman_b: over one text's units.
    """

    method: str
    op: Op
    level: str
    score: float  # the unedited score the attributions explain
    items: list[SweepItem]
    spearman: float
    spearman_a: float
    spearman_b: float
    spearman_target: float  # rank agreement of attribution and target_loss, both texts
    pad_token: str  # what a masked position holds
    forwards: int  # batched forward passes this sweep ran (0: every version was embedded before)
    seconds: float

    disagreement_rule = (
        "the map and the model disagree on a unit when its rank by attribution and its rank by loss are more than "
        "a quarter of the units (and at least 2) apart"
    )

    @property
    def losses(self) -> np.ndarray:
        return np.array([item.loss for item in self.items])

    @property
    def attributions(self) -> np.ndarray:
        return np.array([item.attribution for item in self.items])

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "method_label": method_label(self.method),
            "op": self.op,
            "level": self.level,
            "score": self.score,
            "spearman": _json_float(self.spearman),
            "spearman_a": _json_float(self.spearman_a),
            "spearman_b": _json_float(self.spearman_b),
            "spearman_target": _json_float(self.spearman_target),
            "pad_token": self.pad_token,
            "forwards": self.forwards,
            "seconds": self.seconds,
            "disagreement_rule": self.disagreement_rule,
            "items": [item.to_dict() for item in self.items],
        }


def _json_float(value: float) -> float | None:
    return None if not np.isfinite(value) else float(value)


def disagreements(attributions: np.ndarray, losses: np.ndarray) -> np.ndarray:
    """Per unit: its two ranks more than a quarter of the units (and at least 2) apart.

    Ranks, not signs: in approximate mode masking a token also moves the reference terms, so every loss can
    have one sign while the attributions have the other (see Sweep.target_loss).
    """
    if len(attributions) == 0:
        return np.zeros(0, dtype=bool)
    gap = np.abs(descending_ranks(attributions) - descending_ranks(losses))
    return gap > max(2.0, len(attributions) / 4)


def sweep_prepared(pair: PreparedPair, *, op: str = "mask", method: str = DEFAULT_METHOD) -> Sweep:
    """The sweep of a prepared pair (`units.prepare`), every single-unit edit in batched forward passes."""
    edit = check_op(op)
    started = time.perf_counter()
    forwards = pair.scorer.forwards
    units = pair.units
    removals = [((), ())] + [
        (u.positions, ()) if u.side == "a" else ((), u.positions) for u in units
    ]  # the unedited pair first
    scores, targets = pair.scorer.evaluate(removals, edit)
    base, edited = float(scores[0]), scores[1:]
    losses = base - edited
    target_losses = targets[0] - targets[1:]
    attributions = unit_attributions(pair.result.matrix, pair.units_a, pair.units_b)
    ranks_attr = descending_ranks(attributions)
    ranks_loss = descending_ranks(losses)
    disagree = disagreements(attributions, losses)
    items = [
        SweepItem(
            side=u.side,
            index=u.index,
            positions=u.positions,
            label=u.label,
            attribution=float(attributions[k]),
            score=float(edited[k]),
            loss=float(losses[k]),
            target_loss=float(target_losses[k]),
            attribution_rank=int(np.ceil(ranks_attr[k])),
            loss_rank=int(np.ceil(ranks_loss[k])),
            disagrees=bool(disagree[k]),
        )
        for k, u in enumerate(units)
    ]
    n_a = len(pair.units_a)
    tokenizer = pair.scorer.model.tokenizer
    return Sweep(
        method=method,
        op=edit,
        level=pair.level,
        score=base,
        items=items,
        spearman=spearman(attributions, losses),
        spearman_a=spearman(attributions[:n_a], losses[:n_a]),
        spearman_b=spearman(attributions[n_a:], losses[n_a:]),
        spearman_target=spearman(attributions, target_losses),
        pad_token=str(tokenizer.convert_ids_to_tokens(pair.scorer.pad)),
        forwards=pair.scorer.forwards - forwards,
        seconds=time.perf_counter() - started,
    )


def perturbation_sweep(
    model: LoadedModel | str,
    result: Attribution,
    options: ExplainOptions | RunOptions | None = None,
    *,
    op: str = "mask",
    level: str = "token",
    method: str = DEFAULT_METHOD,
    chunk: int = DEFAULT_CHUNK,
    limits: Limits | None = None,
    **option_values: object,
) -> Sweep:
    """Remove each token (level="token") or word (level="word") of either text of `result` in turn (op "mask":
    the pad token; "drop": deleted) and report the score's loss next to the map's attribution of it.

    `options` (or their fields by keyword) must be those `result` was explained with (prompt, device);
    `method` names the attribution method that made `result` (a label; see attribution.faithfulness.methods).
    """
    pair = prepare(model, result, options, level=level, chunk=chunk, limits=limits, **option_values)
    return sweep_prepared(pair, op=op, method=method)
