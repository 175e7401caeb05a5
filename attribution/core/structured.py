"""Structured forward-mode node slices for post-LN BERT-like layers: the entry layer differentiated by hand.

At one node a, for one text (attribution.core.jacobian), the engine needs

    columns[d, t] = (J_f(x) T_t)[d],   x = r + a (h - r) (S, H),   T_t = e_t (h - r)[t]^T,

S Jacobian-vector products whose tangents are non-zero in ONE row each. The generic path pushes all S
tangents through every op with vmap(jvp). At the entry layer L the tangents are still one-row, and a
post-LN BERT-like layer (bert, roberta, xlm-roberta, mpnet with its relative position bias) lets us
use that (per head h, width d, scale s, tangent t; P = softmax(s Q K^T + bias), C = P V):

    Q' = e_t qd_t^T, K' = e_t kd_t^T, V' = e_t vd_t^T   qd = delta Wq^T etc.: one (S, H) @ (H, H) each
    scores' = e_t u_t^T + w_t e_t^T,  u_t = s K qd_t,  w_t = s Q kd_t
    C'[r]   = P[r,t] vd_t + G[r,t] (V[t] - C[r]) + [r = t] Z_t,   G[r,t] = w_t[r] P[r,t]
    Z_t     = (P[t] * u_t) V - (P[t] . u_t) C[t]
    O'      = C' Wo^T, pushed into the heads (contractions over the heads only),

so no (S_t, heads, S, S) tangent is ever formed. The tangent is dense from y = O + x on: the rest of
layer L and the later layers run through vmap(jvp) (`LoadedModel.tail(L + 1)`), in chunks. If L is the
LAST layer and the head is plain mean or CLS pooling (+ Dense / LayerNorm modules), the rest is
differentiated by hand too (`FinalHead`): LN2 is linear in its tangent and mean pooling is linear, so
W2 is pushed through the pooling; CLS pooling needs row 0 of each tangent only.

Applicability is decided from the loaded model's modules (`structured_layer`), then verified numerically
once per evaluator: the structured primal must reproduce the model's own tail (`StructuredColumns.check`);
anything else falls back to the generic `node_contributions`. Maths checked against the generic path and
the per-dimension oracle in tests/core/test_structured.py. Device and dtype follow the tensors given.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn
from torch.func import jvp, vmap

from ..compat import pooling_mode
from .execution import Run

if TYPE_CHECKING:
    from ..models import LoadedModel

log = logging.getLogger(__name__)
Fn = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class EntryAttention:
    """The parts of one post-LN BERT-like layer the structured JVP needs."""

    query: nn.Linear
    key: nn.Linear
    value: nn.Linear
    output: nn.Linear  # attention output projection Wo (with bias)
    norm: nn.LayerNorm  # LN1, applied to y = output(C) + x
    intermediate: nn.Module  # W1 + activation (BertIntermediate-like)
    ffn_out: nn.Module  # W2 + residual + LN2: ffn_out(g, a) (BertOutput-like)
    heads: int
    head_dim: int
    scale: float
    position_bias: Callable[[torch.Tensor], torch.Tensor] | None  # x (B, S, H) -> (1, heads, S, S) (MPNet)

    def feed_forward(self, a: torch.Tensor) -> torch.Tensor:
        """LN1 output (B, S, H) -> the layer's output."""
        return self.ffn_out(self.intermediate(a), a)


def _linear(module: object) -> bool:
    return isinstance(module, nn.Linear)


def structured_layer(model: LoadedModel, layer: int) -> EntryAttention | None:
    """Handles of encoder layer `layer` when its modules have the post-LN BERT-like layout, else None.

    Recognised from the modules themselves: a BERT-style layer (attention.self.{query,key,value},
    attention.output.{dense,LayerNorm}) or an MPNet-style one (attention.attn.{q,k,v,o},
    attention.LayerNorm, with the encoder's relative position bias), both followed by
    intermediate.{dense, intermediate_act_fn} and output.{dense, LayerNorm}. Decoders, cross
    attention and relative-key position embeddings are refused.
    """
    entry = model.entry
    if not 0 <= layer < model.num_layers:
        return None
    config = entry.hf.config
    if getattr(config, "is_decoder", False) or getattr(config, "add_cross_attention", False):
        return None
    if getattr(config, "position_embedding_type", "absolute") not in ("absolute", None):
        return None
    try:
        layers = entry.hf.get_submodule(entry.layers_path)
        module = layers[layer]
        attention = module.attention
        intermediate, ffn_out = module.intermediate, module.output
        w1, w2, ln2 = intermediate.dense, ffn_out.dense, ffn_out.LayerNorm
        if not callable(getattr(intermediate, "intermediate_act_fn", None)):
            return None
        bias: Callable[[torch.Tensor], torch.Tensor] | None = None
        if hasattr(attention, "self") and hasattr(attention, "output"):  # BERT, RoBERTa, XLM-R
            self_attn = attention.self
            q, k, v = self_attn.query, self_attn.key, self_attn.value
            out, norm = attention.output.dense, attention.output.LayerNorm
            heads, head_dim = int(self_attn.num_attention_heads), int(self_attn.attention_head_size)
            scale = float(getattr(self_attn, "scaling", head_dim**-0.5))
            if getattr(self_attn, "is_causal", False) or getattr(self_attn, "is_decoder", False):
                return None
        elif hasattr(attention, "attn") and hasattr(attention, "LayerNorm"):  # MPNet
            self_attn = attention.attn
            q, k, v, out = self_attn.q, self_attn.k, self_attn.v, self_attn.o
            norm = attention.LayerNorm
            heads, head_dim = int(self_attn.num_attention_heads), int(self_attn.attention_head_size)
            scale = head_dim**-0.5
            parent_path = entry.layers_path.rpartition(".")[0]
            encoder = entry.hf.get_submodule(parent_path) if parent_path else entry.hf
            compute = getattr(encoder, "compute_position_bias", None)
            if compute is None:
                return None
            bias = lambda x, compute=compute: compute(x[:1])  # noqa: E731  (1, heads, S, S)
        else:
            return None
    except (AttributeError, IndexError, TypeError):
        return None
    if not all(_linear(m) for m in (q, k, v, out, w1, w2)):
        return None
    if not isinstance(norm, nn.LayerNorm) or not isinstance(ln2, nn.LayerNorm):
        return None
    if heads * head_dim != model.hidden_size or q.bias is None:
        return None
    return EntryAttention(q, k, v, out, norm, intermediate, ffn_out, heads, head_dim, scale, bias)


# ----------------------------------------------------------------------------------------------- entry layer


@dataclass
class EntryFactors:
    """Per batch item b (a text at one node), everything the tangent chunks are built from.

    y:  (B, S, H)         primal residual sum output(C) + x (input of LN1)
    pg: (B, S_t, S_r, 2h) [P[r, t], G[r, t]] over heads, tangent-major
    ab: (B, S_t, 2h, H)   [vd_t Wo_h^T, V_h[t] Wo_h^T] over heads
    g:  (B, S_r, S_t, h)  G[r, t]
    cc: (B, S_r, h, H)    C_h[r] Wo_h^T
    diag: (B, S_t, H)     Z_t Wo^T + delta[t]  (added at row t of tangent t)
    """

    y: torch.Tensor
    pg: torch.Tensor
    ab: torch.Tensor
    g: torch.Tensor
    cc: torch.Tensor
    diag: torch.Tensor


def entry_factors(spec: EntryAttention, x: torch.Tensor, delta: torch.Tensor) -> EntryFactors:
    """Primal pass of the entry attention plus the factors of its S one-row tangents; x, delta (B, S, H)."""
    b, s, hidden = x.shape
    nh, d = spec.heads, spec.head_dim

    def split(t: torch.Tensor) -> torch.Tensor:  # (B, S, H) -> (B, h, S, d)
        return t.reshape(b, s, nh, d).transpose(1, 2)

    q, k, v = split(spec.query(x)), split(spec.key(x)), split(spec.value(x))
    qd = split(delta @ spec.query.weight.T)
    kd = split(delta @ spec.key.weight.T)
    vd = split(delta @ spec.value.weight.T)
    scores = (q @ k.transpose(-1, -2)) * spec.scale
    if spec.position_bias is not None:
        scores = scores + spec.position_bias(x)
    p = torch.softmax(scores, dim=-1)  # (B, h, S_r, S_k)
    c = p @ v  # (B, h, S, d)
    y = spec.output(c.transpose(1, 2).reshape(b, s, hidden)) + x
    u = (qd @ k.transpose(-1, -2)) * spec.scale  # (B, h, t, j)
    w = (q @ kd.transpose(-1, -2)) * spec.scale  # (B, h, r, t)
    g = w * p  # (B, h, r, t)
    pu = p * u  # rows t of P times u_t
    z = pu @ v - pu.sum(-1, keepdim=True) * c  # (B, h, t, d)
    wo = spec.output.weight.view(hidden, nh, d).permute(1, 2, 0)  # (h, d, H): Wo_h^T
    a_fac = vd @ wo  # (B, h, t, H)
    b_fac = v @ wo  # (B, h, t, H)
    cc = (c @ wo).transpose(1, 2).contiguous()  # (B, S_r, h, H)
    diag = z.transpose(1, 2).reshape(b, s, hidden) @ spec.output.weight.T + delta
    pg = torch.cat([p, g], dim=1).permute(0, 3, 2, 1).contiguous()  # (B, t, r, 2h)
    ab = torch.cat([a_fac, b_fac], dim=1).permute(0, 2, 1, 3).contiguous()  # (B, t, 2h, H)
    return EntryFactors(y=y, pg=pg, ab=ab, g=g.permute(0, 2, 3, 1).contiguous(), cc=cc, diag=diag)


def tangent_chunk(f: EntryFactors, t0: int, t1: int, row: int | None = None) -> torch.Tensor:
    """y' for tangents t0..t1-1: (B, c, S, H), tangent t's derivative of the residual sum y.

    With `row` given, only that row of each tangent: (B, c, 1, H) (CLS pooling at the last layer).
    """
    if row is not None:
        out = f.pg[:, t0:t1, row : row + 1] @ f.ab[:, t0:t1]  # (B, c, 1, H)
        out -= (f.g[:, row : row + 1, t0:t1] @ f.cc[:, row : row + 1]).transpose(1, 2)
        if t0 <= row < t1:
            out[:, row - t0, 0] += f.diag[:, row]
        return out
    out = f.pg[:, t0:t1] @ f.ab[:, t0:t1]  # (B, c, r, H)
    out -= (f.g[:, :, t0:t1] @ f.cc).transpose(1, 2)  # (B, r, c, H) -> (B, c, r, H)
    idx = torch.arange(t0, t1, device=out.device)
    out[:, idx - t0, idx] += f.diag[:, t0:t1]
    return out


# ----------------------------------------------------------------------------------------------- last layer


@dataclass(frozen=True)
class FinalHead:
    """The rest of the LAST encoder layer after its attention, plus pooling: y -> embedding.

    y (B, S, H) -> a = LN1(y) -> o = W2 act(W1 a + b1) + b2 + a -> LN2(o) -> mean or CLS pooling
    -> post-pooling modules (Dense, LayerNorm) -> (B, D).
    """

    ln1: nn.LayerNorm
    w1: nn.Linear
    act: Fn  # elementwise
    w2: nn.Linear
    ln2: nn.LayerNorm
    pooling: str  # "mean" | "cls"
    post: tuple[nn.Module, ...]  # sentence-transformers modules after Pooling (pooled -> embedding)


def final_head(model: LoadedModel, layer: int, spec: EntryAttention) -> FinalHead | None:
    """The last layer's hand-differentiable head, or None (not the last layer, another pooling, a prompt
    left out of the pooling)."""
    if layer != model.num_layers - 1:
        return None
    head = model.entry.head
    if not head or type(head[0]).__name__ != "Pooling":
        return None
    mode = pooling_mode(head[0])
    if mode not in ("mean", "cls"):
        return None
    if model.prompt_length and not getattr(head[0], "include_prompt", True):
        return None
    if any(type(m).__name__ not in ("Dense", "LayerNorm", "Dropout") for m in head[1:]):
        return None
    intermediate, ffn_out = spec.intermediate, spec.ffn_out
    w1, act = getattr(intermediate, "dense", None), getattr(intermediate, "intermediate_act_fn", None)
    w2, ln2 = getattr(ffn_out, "dense", None), getattr(ffn_out, "LayerNorm", None)
    if not (isinstance(w1, nn.Linear) and isinstance(w2, nn.Linear) and isinstance(ln2, nn.LayerNorm)):
        return None
    if act is None:
        return None
    return FinalHead(spec.norm, w1, act, w2, ln2, str(mode), tuple(head[1:]))


def _post(head: FinalHead, pooled: torch.Tensor) -> torch.Tensor:
    features: dict[str, Any] = {"sentence_embedding": pooled}
    for module in head.post:
        features = module(features)
    return features["sentence_embedding"]


def _layer_norm_parts(ln: nn.LayerNorm, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(normalised x, 1/sigma) with sigma = sqrt(var + eps), rows of x (..., H)."""
    mu = x.mean(-1, keepdim=True)
    inv = torch.rsqrt(x.var(-1, unbiased=False, keepdim=True) + ln.eps)
    return (x - mu) * inv, inv


@dataclass
class FinalPrimal:
    """Per item b the primal quantities of the tangent contraction (S rows, I = FFN width).

    n1, inv1: LN1's normalised input (B, S, H) and 1/sigma (B, S, 1); gp: act'(W1 a + b1) (B, S, I);
    n2 (B, S, H), inv2 (B, S, 1): LN2's; m2: n2 W2 / H (B, S, I); pooled (B, H).
    """

    n1: torch.Tensor
    inv1: torch.Tensor
    gp: torch.Tensor
    n2: torch.Tensor
    inv2: torch.Tensor
    m2: torch.Tensor
    pooled: torch.Tensor


def final_primal(head: FinalHead, y: torch.Tensor) -> FinalPrimal:
    n1, inv1 = _layer_norm_parts(head.ln1, y)
    a = n1 * head.ln1.weight + head.ln1.bias
    z = head.w1(a)
    g, gp = jvp(head.act, (z,), (torch.ones_like(z),))[:2]  # elementwise: derivative in one pass
    o = head.w2(g) + a
    n2, inv2 = _layer_norm_parts(head.ln2, o)
    out = n2 * head.ln2.weight + head.ln2.bias
    pooled = out.mean(1) if head.pooling == "mean" else out[:, 0]
    m2 = (n2 @ head.w2.weight) / n2.shape[-1]
    return FinalPrimal(n1, inv1, gp, n2, inv2, m2, pooled)


def final_tangent(head: FinalHead, p: FinalPrimal, ydot: torch.Tensor) -> torch.Tensor:
    """Pooled tangents (B, c, H) (before post-pooling modules) of residual-sum tangents ydot:
    (B, c, S, H) for mean pooling, (B, c, 1, H) (row 0 only) for CLS pooling."""
    rows = slice(None) if head.pooling == "mean" else slice(0, 1)
    n1, inv1, gp, n2, inv2, m2 = (t[:, None, rows] for t in (p.n1, p.inv1, p.gp, p.n2, p.inv2, p.m2))
    # LN1: a' = gamma1 * (y' - mean(y') - n1 mean(n1 y')) / sigma1
    adot = ydot - ydot.mean(-1, keepdim=True)
    adot -= n1 * (n1 * ydot).mean(-1, keepdim=True)
    adot *= inv1 * head.ln1.weight
    gdot = (adot @ head.w1.weight.T).mul_(gp)  # (B, c, S, I)
    # o' = W2 g' + a' is never formed: LN2 and the pooling are linear in it.
    rho = inv2[..., 0] / ydot.shape[2]  # (B, 1, S): 1/(S sigma2_r)
    w2bar = head.w2.weight.mean(0)  # (I,)
    sg = (rho[..., None, :] @ gdot)[..., 0, :]  # (B, c, I) = sum_r rho_r g'_r
    sa = (rho[..., None, :] @ adot)[..., 0, :]  # (B, c, H)
    mean_o = gdot @ w2bar + adot.mean(-1)  # (B, c, S): mean_H o'_r
    corr_o = (gdot * m2).sum(-1) + (n2 * adot).mean(-1)  # (B, c, S): mean_H(n2_r o'_r)
    pooled = sg @ head.w2.weight.T + sa
    pooled -= (mean_o * rho).sum(-1, keepdim=True)
    pooled -= ((corr_o * rho)[..., None, :] @ n2)[..., 0, :]
    return pooled * head.ln2.weight


# ----------------------------------------------------------------------------------------------- evaluator


def final_chunk(seq_len: int, batch: int, hidden: int, inter: int, target_bytes: int = 320 * 2**20) -> int:
    """Tangents per chunk of the hand-differentiated last layer: working set near `target_bytes`.

    One tangent holds about S (4 H + 2 I) floats (a', g' and the W1 product). Measured on the prototype
    (benchmarks/engine_v2_results.md, MiniLM S=256): chunks of 8/16/32/64 tangents took 6.1/4.4/3.1/2.4
    CPU-s per node, so larger chunks pay; 320 MiB gives about 64 there.
    """
    per_tangent = 4 * batch * seq_len * (4 * hidden + 2 * inter)
    return max(1, min(seq_len, target_bytes // max(1, per_tangent)))


def rest_chunk(seq_len: int, batch: int, hidden: int, inter: int, heads: int, budget: int) -> int:
    """Tangents per vmap(jvp) call of the generic rest: one layer's transient working set of the chunk
    (about S (6 H + 2 I + heads S) floats per tangent and item) within `budget` bytes."""
    per_tangent = 4 * batch * seq_len * (6 * hidden + 2 * inter + heads * seq_len)
    return max(1, min(seq_len, budget // max(1, per_tangent)))


class StructuredColumns:
    """Forward-mode node slices (N, D, S) for one model and layer through the structured entry layer.

    Build with `StructuredColumns.for_model` (None where the layout does not qualify). `check(x)` verifies
    once that the structured primal reproduces the model's own tail at x; callers fall back when it fails.
    """

    def __init__(self, model: LoadedModel, layer: int, spec: EntryAttention, *, final: bool = True) -> None:
        self.model = model
        self.layer = layer
        self.spec = spec
        self.head = final_head(model, layer, spec) if final else None
        self.later = model.tail(layer + 1)  # hidden states at the input of layer L + 1 -> f
        self.tail = model.tail(layer)
        config = model.entry.hf.config
        self.inter = int(getattr(config, "intermediate_size", 4 * model.hidden_size))
        self.verified: bool | None = None

    @classmethod
    def for_model(cls, model: LoadedModel, layer: int, *, final: bool = True) -> StructuredColumns | None:
        spec = structured_layer(model, layer)
        return None if spec is None else cls(model, layer, spec, final=final)

    def rest(self, y: torch.Tensor) -> torch.Tensor:
        """The entry layer's residual sum y (B, S, H) -> pooled embedding (B, D), through the model's own modules."""
        return self.later(self.spec.feed_forward(self.spec.norm(y)))

    def primal(self, x: torch.Tensor) -> torch.Tensor:
        """f(x) (B, D) through the structured decomposition (entry attention by hand, then `rest` or the head)."""
        f = entry_factors(self.spec, x, torch.zeros_like(x))
        head = self.head
        if head is not None:  # the head's primal without the activation's derivative (no AD, no gate)
            n1, _ = _layer_norm_parts(head.ln1, f.y)
            a = n1 * head.ln1.weight + head.ln1.bias
            n2, _ = _layer_norm_parts(head.ln2, head.w2(head.act(head.w1(a))) + a)
            out = n2 * head.ln2.weight + head.ln2.bias
            return _post(head, out.mean(1) if head.pooling == "mean" else out[:, 0])
        return self.rest(f.y)

    def check(self, x: torch.Tensor, rtol: float = 1e-4) -> bool:
        """Once: does the structured primal reproduce the model's tail at x (B, S, H)? Logged when not."""
        if self.verified is None:
            with torch.no_grad():
                own = self.tail(x)
                mine = self.primal(x)
            scale = float(own.abs().max().clamp_min(1e-30))
            diff = float((mine - own).abs().max())
            self.verified = diff <= rtol * max(scale, 1.0)
            if not self.verified:
                log.info(
                    "structured entry layer does not reproduce %s at layer %d (%.2e); generic path",
                    self.model.name,
                    self.layer,
                    diff,
                )
        return self.verified

    def nodes_per_call(self, seq_len: int, budget: int) -> int:
        """Nodes whose (B, S, S, 2h) and (B, S, 2h, H) factors fit in `budget` bytes together."""
        heads = self.spec.heads
        per_item = 4 * seq_len * (seq_len * 3 * heads + 3 * heads * self.model.hidden_size)
        return max(1, budget // max(1, per_item))

    def __call__(
        self, h: torch.Tensor, r: torch.Tensor, nodes: np.ndarray, *, budget_bytes: int, run: Run
    ) -> torch.Tensor:
        """J_f(r + a (h - r)) applied to (h - r) row by row, (N, D, S): node_contributions' contract."""
        delta = h - r
        seq_len = h.shape[0]
        alphas = torch.as_tensor(np.asarray(nodes), dtype=h.dtype, device=h.device)
        per_call = self.nodes_per_call(seq_len, budget_bytes // 4)
        outs = []
        with torch.no_grad():
            for n0 in range(0, len(alphas), per_call):
                a = alphas[n0 : n0 + per_call]
                x = r + a[:, None, None] * delta
                d = delta.expand(len(a), -1, -1)
                outs.append(self.columns(x, d, budget_bytes, run))
        return torch.cat(outs, dim=0)

    def columns(self, x: torch.Tensor, delta: torch.Tensor, budget_bytes: int, run: Run) -> torch.Tensor:
        """(B, D, S): column t of item b is J_f(x_b) applied to delta_b kept on row t only.

        One `run.unit` per chunk of tangents (the primal factors are computed inside the first one, the
        post-pooling JVPs inside the last), so a call holding a whole text passes the gate once.
        """
        b, s, hidden = x.shape
        head = self.head
        if head is not None:  # within the budget too: the scheduler's chunk cap bounds a chunk's time
            size = final_chunk(s, b, hidden, self.inter, min(320 * 2**20, budget_bytes // 4))
        else:  # vmap(jvp) recomputes the rest's primal once per chunk: chunks as large as the budget allows
            size = rest_chunk(s, b, hidden, self.inter, self.spec.heads, budget_bytes // 4)
        starts = list(range(0, s, size))
        blocks = []
        f: EntryFactors | None = None
        p: FinalPrimal | None = None
        for t0 in starts:
            t1 = min(s, t0 + size)
            with run.unit(b * (t1 - t0)):
                if f is None:
                    f = entry_factors(self.spec, x, delta)
                    p = final_primal(head, f.y) if head is not None else None
                if head is not None:
                    assert p is not None
                    row = None if head.pooling == "mean" else 0
                    blocks.append(final_tangent(head, p, tangent_chunk(f, t0, t1, row)))  # (B, c, H)
                    if t0 == starts[-1]:
                        pooled_dot = torch.cat(blocks, dim=1)  # (B, S_t, H)
                        if head.post:
                            post = lambda q: _post(head, q)  # noqa: E731
                            pooled = p.pooled
                            pooled_dot = vmap(
                                lambda tt, fn=post, at=pooled: jvp(fn, (at,), (tt,))[1], in_dims=1, out_dims=1
                            )(pooled_dot)
                        return pooled_dot.transpose(1, 2)
                else:
                    tangents = tangent_chunk(f, t0, t1)  # (B, c, S, H)
                    y = f.y
                    out = vmap(lambda tt, at=y: jvp(self.rest, (at,), (tt,))[1], in_dims=1)(tangents)  # (c, B, D)
                    blocks.append(out.permute(1, 2, 0))
        return torch.cat(blocks, dim=2)
