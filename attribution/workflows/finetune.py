"""Fine-tune an exact model: the shifted encoder f'(x) = f(x) - f(r_x), trained on scored pairs.

    python -m attribution finetune --base NAME|PATH --train FILE [--dev FILE] --out DIR
        [--epochs 1] [--batch-size 16] [--lr 2e-5] [--similarity cos|dot] [--plain] [--seed 42]

f is the pooled embedding before Normalize and r_x the reference input of x (special tokens kept,
pad elsewhere: [CLS] [PAD]... [SEP]; attribution.core.tokens.reference_token_ids). The objective
is the regression of cos(f'(a), f'(b)) (or the dot product) on gold / 5 by mean squared error, as
sentence-transformers' CosineSimilarityLoss does; reference embeddings are computed in the same
forward pass as the texts, so gradients flow through both. `--plain` trains f itself with the
same settings, the like-for-like baseline.

The result is an ordinary sentence-transformers folder (Transformer + Pooling [+ Dense] [+
Normalize for cos]) plus `pairlens.json`; PairLens computes f(x) - f(r_x) itself in exact mode,
so no custom module is saved. Training state is saved to OUT/checkpoints after every epoch: run
the same command again after an interruption to resume from the last finished epoch.

A plain torch loop is used rather than SentenceTransformerTrainer, which needs the `datasets`
package (not a PairLens dependency) and would hide the reference inputs from the loss.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from ..core.options import SIMILARITIES
from ..devices import resolve_device
from ..errors import InputError
from ..models import EXACT_MARKER, load_model
from ..models.registry import quiet_transformers
from ..settings import get_settings
from .data import PairFile, read_pairs
from .evaluate import correlations, pair_scores, reference_rows, token_ids

REFERENCE = "cls-pad-sep"
SCORE_MAX = 5.0  # gold scores are on the STS scale 0-5; the regression target is gold / 5
WARMUP_RATIO = 0.1  # linear warm-up over this share of all steps, then linear decay to 0
WEIGHT_DECAY = 0.01  # AdamW, not applied to biases and LayerNorm weights
MAX_GRAD_NORM = 1.0
CHECKPOINTS = "checkpoints"


@dataclass
class FinetuneReport:
    """What `finetune` did; also written (in part) to OUT/pairlens.json."""

    out: str  # the model folder
    exact: bool  # False for --plain
    base_model: str
    similarity: str  # "cos" | "dot"
    train_file: str
    train_pairs: int
    train_malformed: int
    epochs: int
    batch_size: int
    lr: float
    seed: int
    steps: int  # optimizer steps over all epochs
    dev_file: str | None = None
    dev_spearman_before: float | None = None  # dev Spearman x 100 of the untrained (shifted) base
    dev_spearman: list[float] = field(default_factory=list)  # dev Spearman x 100 after each epoch
    best_epoch: int = 0  # 1-based epoch whose weights were kept (the last one without --dev)
    epoch_seconds: list[float] = field(default_factory=list)  # training time of each epoch (dev eval excluded)
    seconds: float = 0.0  # wall time of this call, model loading included
    resumed_from: int = 0  # epochs already done when this call started (0: a fresh run)
    train_loss: list[float] = field(default_factory=list)  # mean MSE per epoch

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class _Setup:
    """Everything that must match for a run to be resumed."""

    base_model: str
    base_source: str
    train_file: str
    train_pairs: int
    dev_file: str | None
    epochs: int
    batch_size: int
    lr: float
    similarity: str
    exact: bool
    seed: int
    max_tokens: int


class _Embedder(torch.nn.Module):
    """sentence-transformers' own modules up to Normalize: (B, S) ids + (B, S) mask -> (B, D) pooled."""

    def __init__(self, st: Any) -> None:
        super().__init__()
        stages: list[torch.nn.Module] = []
        for module in st:
            if type(module).__name__ == "Normalize":
                break
            stages.append(module)
        self.stages = torch.nn.ModuleList(stages)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        features: dict[str, torch.Tensor] = {"input_ids": ids, "attention_mask": mask}
        for module in self.stages:
            features = module(features)
        return features["sentence_embedding"]

    def unpadded(self, ids: torch.Tensor) -> torch.Tensor:
        """Same as forward for a batch of equal-length texts (all positions attended), on the model's device."""
        ids = ids.to(next(self.parameters()).device)
        return self(ids, torch.ones_like(ids))


def batch_similarity(
    embedder: _Embedder,
    tokenizer: Any,
    max_tokens: int,
    texts_a: Sequence[str],
    texts_b: Sequence[str],
    exact: bool,
    similarity: str,
) -> torch.Tensor:
    """Differentiable similarity of each pair, shape (B,): shifted embeddings when `exact`.

    The texts and their distinct reference inputs go through the encoder as one padded batch.
    """
    texts = token_ids(tokenizer, [*texts_a, *texts_b], max_tokens)
    seqs = [list(t.ids) for t in texts]
    refs, rows = reference_rows(texts, tokenizer) if exact else ([], [])
    seqs += [list(r) for r in refs]
    padded = tokenizer.pad({"input_ids": seqs}, padding=True, return_tensors="pt")
    device = next(embedder.parameters()).device
    pooled = embedder(padded["input_ids"].to(device), padded["attention_mask"].to(device))
    n = len(texts_a)
    u, v = pooled[:n], pooled[n : 2 * n]
    if exact:
        ref_rows = torch.tensor(rows, dtype=torch.long, device=pooled.device) + 2 * n
        u = u - pooled[ref_rows[:n]]
        v = v - pooled[ref_rows[n:]]
    if similarity == "dot":
        return (u * v).sum(dim=-1)
    return torch.nn.functional.cosine_similarity(u, v, dim=-1, eps=1e-12)


def finetune(
    base: str,
    train: str | Path,
    out: str | Path,
    dev: str | Path | None = None,
    epochs: int = 1,
    batch_size: int = 16,
    lr: float = 2e-5,
    similarity: str = "cos",
    plain: bool = False,
    seed: int = 42,
    progress: bool = True,
    overwrite: bool = False,
) -> FinetuneReport:
    """Train the shifted model (or, with plain=True, the model itself) and save it to `out`.

    Regression of the similarity on gold / 5 (MSE), AdamW with linear warm-up (10%) and decay,
    batch_size pairs per step. With `dev`, Spearman x 100 is measured after every epoch and the
    best epoch is kept. Resumes from OUT/checkpoints when they belong to the same settings.
    """
    started = time.perf_counter()
    _check_options(epochs, batch_size, lr, similarity)
    out_dir = resolve_out(out)
    train_file = read_pairs(train)
    _check_gold(train_file)
    dev_file = None
    if dev is not None:
        dev_file = read_pairs(dev)
        _check_gold(dev_file)
    checkpoints = out_dir / CHECKPOINTS
    _prepare_out(out_dir, overwrite)

    loaded = load_model(base)
    exact = not plain
    setup = _Setup(
        base_model=loaded.name,
        base_source=loaded.source,
        train_file=str(Path(train_file.path).resolve()),
        train_pairs=len(train_file.pairs),
        dev_file=str(Path(dev_file.path).resolve()) if dev_file else None,
        epochs=epochs,
        batch_size=batch_size,
        lr=float(lr),
        similarity=similarity,
        exact=exact,
        seed=seed,
        max_tokens=loaded.max_tokens,
    )
    state = _latest_checkpoint(checkpoints)
    if state is not None and state["setup"] != asdict(setup):
        raise InputError(
            f"'{checkpoints}' holds an interrupted run with different settings; resume it with the same "
            "options, or pass --overwrite (or choose another --out) to start afresh."
        )
    resumed_from = int(state["epoch"]) if state else 0
    source = str(checkpoints / f"epoch-{resumed_from}" / "model") if state else loaded.source
    st = _load_st(source)
    _set_similarity(st, similarity)
    embedder = _Embedder(st)
    tokenizer = loaded.tokenizer
    pairs = train_file.pairs
    steps_per_epoch = math.ceil(len(pairs) / batch_size)
    total_steps = steps_per_epoch * epochs
    optimizer = _optimizer(embedder, lr)
    scheduler = _scheduler(optimizer, total_steps)
    report = FinetuneReport(
        out=str(out_dir),
        exact=exact,
        base_model=loaded.name,
        similarity=similarity,
        train_file=str(train_file.path),
        train_pairs=len(pairs),
        train_malformed=train_file.malformed,
        epochs=epochs,
        batch_size=batch_size,
        lr=float(lr),
        seed=seed,
        steps=total_steps,
        dev_file=str(dev_file.path) if dev_file else None,
        resumed_from=resumed_from,
    )
    mode = "exact" if exact else "approximate"
    if state is not None:
        trainer = torch.load(checkpoints / f"epoch-{resumed_from}" / "trainer.pt", weights_only=True)
        optimizer.load_state_dict(trainer["optimizer"])
        scheduler.load_state_dict(trainer["scheduler"])
        for key in ("dev_spearman_before", "dev_spearman", "best_epoch", "epoch_seconds", "train_loss"):
            setattr(report, key, state["report"][key])
        _say(progress, f"resuming {out_dir} after epoch {resumed_from} of {epochs}")
    elif dev_file is not None:
        report.dev_spearman_before = _dev_spearman(embedder, tokenizer, loaded.max_tokens, dev_file, mode, similarity)
        _say(progress, f"dev Spearman before training ({mode}): {report.dev_spearman_before:.2f}")

    for epoch in range(resumed_from + 1, epochs + 1):
        seconds, loss = _train_epoch(
            embedder,
            tokenizer,
            loaded.max_tokens,
            pairs,
            optimizer,
            scheduler,
            batch_size,
            exact,
            similarity,
            seed + epoch,
            progress,
            f"epoch {epoch}/{epochs}",
        )
        report.epoch_seconds.append(seconds)
        report.train_loss.append(loss)
        if dev_file is not None:
            score = _dev_spearman(embedder, tokenizer, loaded.max_tokens, dev_file, mode, similarity)
            report.dev_spearman.append(score)
            best = report.dev_spearman[report.best_epoch - 1] if report.best_epoch else -math.inf
            if score > best:
                report.best_epoch = epoch
            _say(progress, f"epoch {epoch}: dev Spearman {score:.2f} ({seconds:.0f} s training)")
        else:
            report.best_epoch = epoch
        _save_checkpoint(checkpoints, epoch, st, optimizer, scheduler, setup, report)

    _finalize(out_dir, checkpoints, report, train_file, dev_file, started)
    return report


def resolve_out(out: str | Path) -> Path:
    """A bare name (no path separator) means $PAIRLENS_HOME/models/NAME, where the page lists it."""
    text = str(out).strip()
    if not text:
        raise InputError("--out is empty: give a folder for the fine-tuned model.")
    if os.sep not in text and "/" not in text and text not in (".", "..") and not text.startswith("~"):
        return get_settings().models_dir / text
    return Path(text).expanduser().resolve()


def _check_options(epochs: int, batch_size: int, lr: float, similarity: str) -> None:
    if not isinstance(epochs, int) or epochs < 1:
        raise InputError(f"epochs must be a whole number of at least 1 (got {epochs!r}).")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise InputError(f"batch size must be a whole number of at least 1 (got {batch_size!r}).")
    if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
        raise InputError(f"learning rate must be a positive number such as 2e-5 (got {lr!r}).")
    if similarity not in SIMILARITIES:
        raise InputError(f"Unknown similarity '{similarity}': choose 'cos' or 'dot'.")


def _check_gold(pairs: PairFile) -> None:
    if not pairs.has_gold:
        raise InputError(
            f"'{pairs.path}' has pairs without a gold score: training and dev files need one for every pair "
            "(STS Benchmark column 5, a 'score' column, or a 'score' key)."
        )
    golds = [p.gold for p in pairs.pairs if p.gold is not None]
    low, high = min(golds), max(golds)
    if low < 0 or high > SCORE_MAX:
        raise InputError(
            f"'{pairs.path}' has scores from {low:g} to {high:g}; scores must be on the STS scale 0-5 "
            "(rescale them: the training target is score / 5)."
        )


def _prepare_out(out_dir: Path, overwrite: bool) -> None:
    """Refuse to clobber a finished model or an unrelated folder unless told to."""
    if not out_dir.exists():
        return
    if not out_dir.is_dir():
        raise InputError(f"--out '{out_dir}' is a file: give a folder for the fine-tuned model.")
    has_model = (out_dir / "modules.json").is_file()
    has_checkpoints = (out_dir / CHECKPOINTS).is_dir()
    if overwrite and (has_model or has_checkpoints):
        shutil.rmtree(out_dir)
        return
    if has_checkpoints:
        return  # resume (settings are checked by the caller)
    if has_model:
        raise InputError(f"'{out_dir}' already holds a model: choose another --out, or pass --overwrite to replace it.")
    if any(out_dir.iterdir()):
        raise InputError(f"'{out_dir}' is not empty and is not a model folder: choose an empty or new --out folder.")


def _load_st(source: str) -> Any:
    """The SentenceTransformer to train, on PAIRLENS_DEVICE (default: CUDA when available, else the CPU)."""
    from sentence_transformers import SentenceTransformer

    device = resolve_device(get_settings().device, "PAIRLENS_DEVICE")
    try:
        with quiet_transformers():
            st = SentenceTransformer(source, device=device, local_files_only=Path(source).exists())
    except Exception as exc:  # a broken checkpoint becomes one clear message
        reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise InputError(
            f"Could not load '{source}' for training ({reason}); pass --overwrite to start afresh."
        ) from None
    return st


def _set_similarity(st: Any, similarity: str) -> None:
    """cos: keep Normalize (if any); dot: drop Normalize, so PairLens reads the model as dot product."""
    if similarity == "dot":
        for name in [n for n, m in st._modules.items() if type(m).__name__ == "Normalize"]:
            del st._modules[name]
        st.similarity_fn_name = "dot"
    else:
        st.similarity_fn_name = "cosine"


def _optimizer(embedder: _Embedder, lr: float) -> torch.optim.Optimizer:
    decay: list[torch.nn.Parameter] = []
    no_decay: list[torch.nn.Parameter] = []
    for name, param in embedder.named_parameters():
        if not param.requires_grad:
            continue
        (no_decay if name.endswith("bias") or "LayerNorm" in name or "layer_norm" in name else decay).append(param)
    groups = [{"params": decay, "weight_decay": WEIGHT_DECAY}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=lr)


def _scheduler(optimizer: torch.optim.Optimizer, total_steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up over WARMUP_RATIO of the steps, then linear decay to 0."""
    from transformers import get_linear_schedule_with_warmup

    return get_linear_schedule_with_warmup(optimizer, int(WARMUP_RATIO * total_steps), total_steps)


def _train_epoch(
    embedder: _Embedder,
    tokenizer: Any,
    max_tokens: int,
    pairs: Sequence[Any],
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LambdaLR,
    batch_size: int,
    exact: bool,
    similarity: str,
    seed: int,
    progress: bool,
    label: str,
) -> tuple[float, float]:
    """One pass over the pairs in a seeded random order: (seconds, mean MSE)."""
    started = time.perf_counter()
    torch.manual_seed(seed)  # dropout
    order = torch.randperm(len(pairs), generator=torch.Generator().manual_seed(seed)).tolist()
    embedder.train()
    total, count = 0.0, 0
    bar = tqdm(total=math.ceil(len(pairs) / batch_size), desc=label, unit="step", disable=not progress, file=sys.stderr)
    for start in range(0, len(order), batch_size):
        batch = [pairs[i] for i in order[start : start + batch_size]]
        predicted = batch_similarity(
            embedder, tokenizer, max_tokens, [p.text_a for p in batch], [p.text_b for p in batch], exact, similarity
        )
        target = torch.tensor([p.gold / SCORE_MAX for p in batch], dtype=predicted.dtype, device=predicted.device)
        loss = torch.nn.functional.mse_loss(predicted, target)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(embedder.parameters(), MAX_GRAD_NORM)
        optimizer.step()
        scheduler.step()
        total += loss.item() * len(batch)
        count += len(batch)
        bar.update(1)
        bar.set_postfix(loss=f"{total / count:.4f}")
    bar.close()
    embedder.eval()
    return time.perf_counter() - started, total / max(1, count)


def _dev_spearman(
    embedder: _Embedder, tokenizer: Any, max_tokens: int, dev: PairFile, mode: str, similarity: str
) -> float:
    embedder.eval()
    scores = pair_scores(
        embedder.unpadded,
        tokenizer,
        max_tokens,
        [p.text_a for p in dev.pairs],
        [p.text_b for p in dev.pairs],
        mode,
        similarity,
    )
    spearman, _, _ = correlations([float(p.gold or 0.0) for p in dev.pairs], scores)
    return spearman


def _latest_checkpoint(checkpoints: Path) -> dict[str, Any] | None:
    """state.json of the newest complete epoch checkpoint (temporary folders are removed)."""
    if not checkpoints.is_dir():
        return None
    best: dict[str, Any] | None = None
    for folder in checkpoints.iterdir():
        if folder.name.endswith(".tmp"):
            shutil.rmtree(folder, ignore_errors=True)
            continue
        try:
            state = json.loads((folder / "state.json").read_text())
        except (OSError, ValueError):
            continue
        if isinstance(state, dict) and (best is None or state.get("epoch", 0) > best.get("epoch", 0)):
            best = state
    return best


def _save_checkpoint(
    checkpoints: Path,
    epoch: int,
    st: Any,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LambdaLR,
    setup: _Setup,
    report: FinetuneReport,
) -> None:
    """OUT/checkpoints/epoch-N/{model/, trainer.pt, state.json}, written atomically; keeps last and best."""
    checkpoints.mkdir(parents=True, exist_ok=True)
    final = checkpoints / f"epoch-{epoch}"
    tmp = checkpoints / f"epoch-{epoch}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    with quiet_transformers():
        st.save(str(tmp / "model"), create_model_card=False)
    torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()}, tmp / "trainer.pt")
    state = {"epoch": epoch, "setup": asdict(setup), "report": report.to_dict()}
    (tmp / "state.json").write_text(json.dumps(state, indent=2))  # written last: marks the folder complete
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    for folder in checkpoints.iterdir():
        if folder.name.startswith("epoch-") and folder.name not in (f"epoch-{epoch}", f"epoch-{report.best_epoch}"):
            shutil.rmtree(folder, ignore_errors=True)


def _finalize(
    out_dir: Path, checkpoints: Path, report: FinetuneReport, train: PairFile, dev: PairFile | None, started: float
) -> None:
    """Copy the best epoch's model into OUT, write pairlens.json (last), delete the checkpoints."""
    best = checkpoints / f"epoch-{report.best_epoch}" / "model"
    shutil.copytree(best, out_dir, dirs_exist_ok=True)
    report.seconds = time.perf_counter() - started
    marker = {
        "exact": report.exact,
        "base_model": report.base_model,
        "reference": REFERENCE,
        "similarity": report.similarity,
        "objective": f"MSE of {'shifted ' if report.exact else ''}{report.similarity} similarity on gold/{SCORE_MAX:g}",
        "training": {
            "file": report.train_file,
            "format": train.format,
            "pairs": report.train_pairs,
            "malformed": report.train_malformed,
            "epochs": report.epochs,
            "batch_size": report.batch_size,
            "lr": report.lr,
            "seed": report.seed,
            "steps": report.steps,
            "warmup_ratio": WARMUP_RATIO,
            "weight_decay": WEIGHT_DECAY,
            "seconds": round(sum(report.epoch_seconds), 1),
            "epoch_seconds": [round(s, 1) for s in report.epoch_seconds],
            "train_loss": report.train_loss,
        },
        "metrics": {
            "dev_file": report.dev_file,
            "dev_pairs": len(dev.pairs) if dev else None,
            "dev_spearman_before": report.dev_spearman_before,
            "dev_spearman": report.dev_spearman,
            "best_epoch": report.best_epoch,
        },
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    tmp = out_dir / (EXACT_MARKER + ".tmp")
    tmp.write_text(json.dumps(marker, indent=2))
    tmp.replace(out_dir / EXACT_MARKER)
    shutil.rmtree(checkpoints, ignore_errors=True)


def _say(progress: bool, text: str) -> None:
    if progress:
        print(text, file=sys.stderr, flush=True)


def summary(report: FinetuneReport) -> list[str]:
    """Lines for people: where the model is, what it was trained on, how it scored."""
    kind = "exact" if report.exact else "plain (not exact)"
    lines = [
        f"saved       {report.out} ({kind}, {report.similarity}, from {report.base_model})",
        f"trained on  {report.train_file}: {report.train_pairs} pairs, {report.train_malformed} malformed rows skipped",
        f"schedule    {report.epochs} epochs x {math.ceil(report.train_pairs / report.batch_size)} steps, "
        f"batch {report.batch_size}, lr {report.lr:g}, seed {report.seed}"
        + (f" (resumed after epoch {report.resumed_from})" if report.resumed_from else ""),
        "epoch time  " + ", ".join(f"{s:.0f} s" for s in report.epoch_seconds),
    ]
    if report.dev_file:
        before = f"{report.dev_spearman_before:.2f} before, " if report.dev_spearman_before is not None else ""
        after = ", ".join(f"{s:.2f}" for s in report.dev_spearman)
        lines.append(f"dev         Spearman {before}{after} after each epoch; kept epoch {report.best_epoch}")
    lines.append(f"seconds     {report.seconds:.0f}")
    return lines


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register `finetune` on an argparse subparsers object; dispatch to `run(args)`."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "finetune",
        help="fine-tune an exact model (attributions sum to its similarity)",
        description="Fine-tune the shifted model f(x) - f(reference) on scored pairs, so that "
        "attributions in exact mode sum to the model's own similarity.",
    )
    parser.add_argument("--base", required=True, help="model to start from: built-in name or folder")
    parser.add_argument("--train", required=True, help="training pairs with 0-5 scores (STS Benchmark, CSV/TSV, JSONL)")
    parser.add_argument("--dev", default=None, help="dev pairs: Spearman after each epoch, best epoch kept")
    parser.add_argument(
        "--out",
        required=True,
        help="output folder; a bare NAME means $PAIRLENS_HOME/models/NAME, where PairLens lists it",
    )
    parser.add_argument("--epochs", type=int, default=1, help="passes over the training pairs (default 1)")
    parser.add_argument("--batch-size", type=int, default=16, help="pairs per step (default 16)")
    parser.add_argument("--lr", type=float, default=2e-5, help="peak learning rate (default 2e-5)")
    parser.add_argument("--similarity", choices=SIMILARITIES, default="cos", help="objective and saved similarity")
    parser.add_argument("--plain", action="store_true", help="train the unshifted model (baseline, not exact)")
    parser.add_argument("--seed", type=int, default=42, help="shuffling and dropout seed (default 42)")
    parser.add_argument("--overwrite", action="store_true", help="replace a model or checkpoints already in --out")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """CLI entry: 0 on success, 130 when interrupted; PairLensError propagates (cli.main: exit 2)."""
    try:
        report = finetune(
            args.base,
            args.train,
            args.out,
            dev=args.dev,
            epochs=args.epochs,
            batch_size=args.batch_size,
            lr=args.lr,
            similarity=args.similarity,
            plain=args.plain,
            seed=args.seed,
            progress=not getattr(args, "quiet", False),
            overwrite=getattr(args, "overwrite", False),
        )
    except KeyboardInterrupt:
        print(
            f"\ninterrupted: run the same command again to resume from the last finished epoch in "
            f"{resolve_out(args.out) / CHECKPOINTS}",
            file=sys.stderr,
        )
        return 130
    for line in summary(report):
        print(line)
    return 0
