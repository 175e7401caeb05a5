"""A persistent result cache: SQLite (WAL) under PAIRLENS_HOME, bounded, shared by processes.

One entry per (model identity, text A, text B, every option that changes the numbers, POS
annotation, engine and schema version); the value is `Attribution.to_dict()` as zlib-compressed
JSON (floats round-trip exactly). Model identity is the model's name plus a fingerprint of the
bytes that define it: for a folder, a hash of its weights and every config and tokenizer file
(attribution.models.identity: no load needed, each file hashed once while its inode, size and
times stay the same), so a copy with one byte changed (say, CLS pooling) never shares an entry
with the original; for a hub id, a hash of the loaded parameters. Options are resolved for the
model first, with the operator's limits, into RunOptions (layer=None and layer=5 are one entry for
MiniLM) and the key holds every field of them that can change a result (`RunOptions.result_fields`:
the step cap of steps="auto", the tokens per text, the memory budget and the device, which change
the numbers by float rounding, and the rest), so a result computed under other settings is never served.

The cache holds at most PAIRLENS_CACHE_MB (the least recently used entries go first; 0 turns
it off). Several processes (page replicas, `pairlens serve`, the CLI, `pairlens analyze`) use
one file at once: SQLite's locks and WAL make that safe. A corrupt or unreadable file is moved
aside and rebuilt with a warning; when even that fails the cache turns itself off for the
process with a warning. The cache is never fatal: every failure is a miss.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import sqlite3
import threading
import time
import warnings
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

import torch

from ..core import engine, many
from ..core.engine import ENGINE_VERSION
from ..core.execution import Run
from ..core.options import ExplainOptions, Limits, RunOptions, model_max_tokens
from ..core.tokens import check_text
from ..errors import InputError, PairLensError, PairLensWarning
from ..models import LoadedModel, load_model
from ..models.identity import folder_fingerprint, loaded_fingerprint
from ..models.loaded import resolve_prompt
from ..models.registry import resolve_source
from ..result import SCHEMA_VERSION, Attribution
from ..result.linguistics import annotate
from ..settings import get_settings

log = logging.getLogger(__name__)
T = TypeVar("T")

LAYOUT_VERSION = 1  # the tables below; another value in `meta` rebuilds the file
EVICT_TO = 0.9  # when over the bound, evict down to this fraction of it
_TABLES = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS results (
    key TEXT PRIMARY KEY, value BLOB NOT NULL, size INTEGER NOT NULL,
    created INTEGER NOT NULL, last_used INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS results_lru ON results (last_used);
CREATE TABLE IF NOT EXISTS models (fingerprint TEXT PRIMARY KEY, facts TEXT NOT NULL);
"""
_BROKEN = {"SQLITE_CORRUPT", "SQLITE_NOTADB", "SQLITE_CANTOPEN", "SQLITE_IOERR", "SQLITE_READONLY"}


# ----------------------------------------------------------------------------- model identity


@dataclass(frozen=True)
class ModelIdentity:
    """Which weights computed a result: display name, where they were loaded from, a fingerprint."""

    name: str
    source: str
    fingerprint: str


@dataclass(frozen=True)
class ModelFacts:
    """What resolving options needs of a model (`ExplainOptions.for_model`), without loading it."""

    name: str
    num_layers: int
    default_layer: int
    default_mode: str
    similarity: str
    prompts: dict[str, str] = field(default_factory=dict)  # the model's saved prompts by name
    default_prompt_name: str | None = None
    model_max_tokens: int | None = None  # the model's own token limit (None in caches written before it)

    @classmethod
    def of(cls, model: LoadedModel) -> ModelFacts:
        return cls(
            model.name,
            model.num_layers,
            model.default_layer,
            model.default_mode,
            model.similarity,
            dict(model.prompts),
            model.default_prompt_name,
            model_max_tokens(model),
        )

    def resolve_prompt(self, prompt_name: str | None = None, prompt: str | None = None) -> str | None:
        """The prompt the loaded model would use (LoadedModel.resolve_prompt)."""
        return resolve_prompt(self.name, self.prompts, self.default_prompt_name, prompt_name, prompt)


_fingerprints: dict[str, str] = {}  # hub id -> weights fingerprint, once per process (like loaded models)
_facts: dict[str, ModelFacts] = {}  # fingerprint -> facts of the models this process has used
_fingerprint_lock = threading.Lock()


def weights_fingerprint(model: LoadedModel) -> str:
    """sha256 of the pooling, similarity and every parameter and buffer of the encoder and pooling modules."""
    digest = hashlib.sha256()
    digest.update(f"{model.pooling}\0{model.similarity}\0{model.max_tokens}\n".encode())  # no weights of their own
    modules: list[torch.nn.Module] = [model.encoder, *model.pooling_modules]
    for index, module in enumerate(modules):
        for name, tensor in module.state_dict().items():
            data = tensor.detach().cpu().contiguous()
            digest.update(f"{index}.{name}\0{tuple(data.shape)}\0{data.dtype}\n".encode())
            digest.update(data.view(-1).view(torch.uint8).numpy().tobytes())
    return "weights:" + digest.hexdigest()[:32]


def model_identity(model: LoadedModel | str, *, load: bool = True) -> ModelIdentity | None:
    """The identity of a loaded model or of a model name/folder/hub id (ModelError if unknown).

    A folder's fingerprint needs no load. A hub id's needs the loaded model: with load=False
    and the model not loaded yet, None.
    """
    if isinstance(model, LoadedModel):
        name, source = model.name, model.source
    else:
        name, source = resolve_source(model)
    if Path(source).is_dir():
        # the bytes it was loaded from when loaded in this process, else the bytes on disk now
        known = loaded_fingerprint(source) if isinstance(model, LoadedModel) else None
        return ModelIdentity(name, source, known or folder_fingerprint(Path(source)))
    with _fingerprint_lock:
        known = _fingerprints.get(source)
    if known is None:
        if isinstance(model, LoadedModel):
            known = weights_fingerprint(model)
        elif load:
            return model_identity(load_model(source))
        else:
            return None
        with _fingerprint_lock:
            known = _fingerprints.setdefault(source, known)
    return ModelIdentity(name, source, known)


def result_key(identity: ModelIdentity, text_a: str, text_b: str, options: RunOptions, pos: bool) -> str:
    """The cache key (64 hex) of a computation under resolved options: every field that can change a result."""
    numeric = options.result_fields()
    payload = {
        "engine": ENGINE_VERSION,
        "schema": SCHEMA_VERSION,
        "model": identity.name,
        "fingerprint": identity.fingerprint,
        "a": text_a,
        "b": text_b,
        "options": numeric,
        "pos": bool(pos),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, ensure_ascii=True).encode("ascii")).hexdigest()


# ----------------------------------------------------------------------------- the store


class ResultCache:
    """A bounded SQLite store of results, safe for threads and processes. Never raises."""

    def __init__(self, path: str | Path, max_bytes: int) -> None:
        self.path = Path(path).expanduser()
        self.max_bytes = int(max_bytes)
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = None
        self._inode: tuple[int, int] | None = None
        self.disabled: str | None = None  # why the cache is off for this process
        self.rebuilt = 0  # how often this process found the file broken and rebuilt it

    # -- public -----------------------------------------------------------------------------

    def lookup(
        self, identity: ModelIdentity, text_a: str, text_b: str, options: RunOptions, pos: bool
    ) -> Attribution | None:
        """The cached result, or None. A POS request is also served by an unannotated entry (annotated now)."""
        found = self.get(result_key(identity, text_a, text_b, options, pos))
        if found is not None:
            return found
        other = self.get(result_key(identity, text_a, text_b, options, not pos))
        if other is None or not pos:
            return other  # an annotated result serves an unannotated request as it is
        return annotate(other)

    def store(
        self,
        identity: ModelIdentity,
        text_a: str,
        text_b: str,
        options: RunOptions,
        pos: bool,
        result: Attribution,
    ) -> None:
        self.put(result_key(identity, text_a, text_b, options, pos), result)

    def get(self, key: str) -> Attribution | None:
        def read(conn: sqlite3.Connection) -> bytes | None:
            row = conn.execute("SELECT value FROM results WHERE key = ?", (key,)).fetchone()
            if row is None:
                return None
            with contextlib.suppress(sqlite3.OperationalError):  # busy: the recency update can wait
                conn.execute("UPDATE results SET last_used = ? WHERE key = ?", (time.time_ns(), key))
            return bytes(row[0])

        blob = self._do(read, None)
        if blob is None:
            return None
        try:
            return Attribution.from_dict(json.loads(zlib.decompress(blob)))
        except (zlib.error, ValueError, KeyError, TypeError, IndexError, PairLensError) as exc:
            self._warn(f"dropped an unreadable entry of the result cache ({type(exc).__name__})")
            self._do(lambda conn: conn.execute("DELETE FROM results WHERE key = ?", (key,)), None)
            return None

    def put(self, key: str, result: Attribution) -> None:
        blob = zlib.compress(json.dumps(result.to_dict(), separators=(",", ":")).encode("utf-8"), 6)
        if len(blob) > self.max_bytes:
            return

        def write(conn: sqlite3.Connection) -> None:
            with _transaction(conn):
                # stamped once the write lock is held: an entry that waited for another process's
                # writes is still the newest, never the first its own eviction removes
                now = time.time_ns()
                conn.execute(
                    "INSERT OR REPLACE INTO results (key, value, size, created, last_used) VALUES (?, ?, ?, ?, ?)",
                    (key, blob, len(blob), now, now),
                )
                self._evict(conn)

        self._do(write, None)

    def model_facts(self, fingerprint: str) -> ModelFacts | None:
        query = "SELECT facts FROM models WHERE fingerprint = ?"
        row = self._do(lambda c: c.execute(query, (fingerprint,)).fetchone(), None)
        if row is None:
            return None
        try:
            return ModelFacts(**json.loads(row[0]))
        except (ValueError, TypeError):
            return None

    def store_model_facts(self, fingerprint: str, facts: ModelFacts) -> None:
        text = json.dumps(asdict(facts))
        query = "INSERT OR REPLACE INTO models (fingerprint, facts) VALUES (?, ?)"
        self._do(lambda c: c.execute(query, (fingerprint, text)), None)

    def stats(self) -> dict[str, Any]:
        """entries, bytes (values), max_bytes, path and, when off, why."""
        row = self._do(lambda c: c.execute("SELECT COUNT(*), COALESCE(SUM(size), 0) FROM results").fetchone(), None)
        entries, size = row if row is not None else (0, 0)
        return {
            "path": str(self.path),
            "entries": int(entries),
            "bytes": int(size),
            "max_bytes": self.max_bytes,
            "disabled": self.disabled,
        }

    def clear(self) -> None:
        self._do(lambda c: c.execute("DELETE FROM results"), None)

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                with contextlib.suppress(sqlite3.Error):
                    self._conn.close()
            self._conn = None
            self._inode = None

    # -- internals ----------------------------------------------------------------------------

    def _evict(self, conn: sqlite3.Connection) -> None:
        """Delete least recently used entries until the values fit in EVICT_TO of the bound."""
        total = int(conn.execute("SELECT COALESCE(SUM(size), 0) FROM results").fetchone()[0])
        if total <= self.max_bytes:
            return
        excess, doomed = total - int(self.max_bytes * EVICT_TO), []
        for key, size in conn.execute("SELECT key, size FROM results ORDER BY last_used, rowid"):
            if excess <= 0:
                break
            doomed.append((key,))
            excess -= int(size)
        conn.executemany("DELETE FROM results WHERE key = ?", doomed)

    def _do(self, operation: Callable[[sqlite3.Connection], T], default: T) -> T:
        """Run one operation; a broken file is rebuilt once, any other failure is a miss."""
        with self._lock:
            for attempt in range(2):
                conn = self._connection()
                if conn is None:
                    return default
                try:
                    return operation(conn)
                except sqlite3.DatabaseError as exc:
                    if _is_broken(exc) and attempt == 0:
                        self._rebuild(exc)
                        continue
                    self._warn(f"the result cache failed ({exc}); continuing without it for this request")
                    return default
            return default

    def _connection(self) -> sqlite3.Connection | None:
        """The open connection, reopened when the file was replaced or removed (by another process)."""
        if self.disabled is not None:
            return None
        if self._conn is not None:
            try:
                stat = self.path.stat()
                if (stat.st_dev, stat.st_ino) == self._inode:
                    return self._conn
            except OSError:
                pass
            self.close()
        for attempt in range(2):
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._conn = self._open()
                return self._conn
            except OSError as exc:
                self._disable(f"cannot create {self.path.parent} ({exc.strerror or exc})")
                return None
            except sqlite3.DatabaseError as exc:
                self.close()
                if attempt == 0 and _is_broken(exc):
                    self._rebuild(exc)
                    continue
                self._disable(f"cannot open {self.path} ({exc})")
                return None
        return None

    def _open(self) -> sqlite3.Connection:
        conn = sqlite3.connect(str(self.path), timeout=10.0, isolation_level=None, check_same_thread=False)
        try:
            conn.execute("PRAGMA journal_mode=WAL").fetchone()
            conn.execute("PRAGMA synchronous=NORMAL")
            with _transaction(conn):
                for statement in filter(None, (s.strip() for s in _TABLES.split(";"))):
                    conn.execute(statement)
                row = conn.execute("SELECT value FROM meta WHERE name = 'layout'").fetchone()
                if row is None:
                    conn.execute("INSERT INTO meta (name, value) VALUES ('layout', ?)", (str(LAYOUT_VERSION),))
                elif row[0] != str(LAYOUT_VERSION):
                    conn.execute("DELETE FROM results")
                    conn.execute("DELETE FROM models")
                    conn.execute("UPDATE meta SET value = ? WHERE name = 'layout'", (str(LAYOUT_VERSION),))
            stat = self.path.stat()
            self._inode = (stat.st_dev, stat.st_ino)
        except BaseException:
            conn.close()
            raise
        return conn

    def _rebuild(self, exc: BaseException) -> None:
        """Move a broken file aside (or delete it) so the next open starts afresh."""
        self.close()
        self.rebuilt += 1
        aside = self.path.with_name(self.path.name + ".corrupt")
        try:
            os.replace(self.path, aside)
        except FileNotFoundError:
            pass
        except OSError:
            with contextlib.suppress(OSError):
                self.path.unlink()
        for suffix in ("-wal", "-shm"):
            with contextlib.suppress(OSError):
                Path(str(self.path) + suffix).unlink()
        self._warn(f"the result cache {self.path} was unreadable ({exc}); it was moved aside and rebuilt")

    def _disable(self, reason: str) -> None:
        self.disabled = reason
        self._warn(f"the result cache is off for this process: {reason}")

    @staticmethod
    def _warn(message: str) -> None:
        log.warning("PairLens: %s", message)
        warnings.warn(f"PairLens: {message}", PairLensWarning, stacklevel=3)


@contextlib.contextmanager
def _transaction(conn: sqlite3.Connection) -> Iterator[None]:
    """BEGIN IMMEDIATE ... COMMIT (ROLLBACK on error): one writer at a time across processes."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def _is_broken(exc: sqlite3.DatabaseError) -> bool:
    name = str(getattr(exc, "sqlite_errorname", "") or "")
    if name in _BROKEN or name.startswith("SQLITE_IOERR"):
        return True
    text = str(exc).lower()
    return any(s in text for s in ("not a database", "malformed", "unable to open", "disk i/o", "readonly"))


_defaults: dict[tuple[str, int], ResultCache] = {}
_defaults_lock = threading.Lock()


def default_cache() -> ResultCache | None:
    """The process's cache for the current settings (PAIRLENS_HOME, PAIRLENS_CACHE_MB); None when off."""
    settings = get_settings()
    if settings.cache_mb == 0:
        return None
    key = (str(settings.cache_path), settings.cache_mb)
    with _defaults_lock:
        cache = _defaults.get(key)
        if cache is None:
            cache = _defaults[key] = ResultCache(settings.cache_path, settings.cache_mb * 2**20)
        return cache


# ----------------------------------------------------------------------------- explain through the cache

CacheChoice = ResultCache | Literal["default"] | None


def cached_explain(
    model: LoadedModel | str,
    text_a: str,
    text_b: str,
    options: ExplainOptions | RunOptions | None = None,
    *,
    pos: bool = True,
    run: Run | None = None,
    cache: CacheChoice = "default",
    limits: Limits | None = None,
) -> tuple[Attribution, bool]:
    """explain(), looked up first and stored after: (result, whether it came from the cache).

    Inputs are checked exactly as explain() checks them, before any lookup. cache: a
    ResultCache, None (compute, store nothing) or "default" (`default_cache()`). limits: the
    operator's (None: read from PAIRLENS_* now); they are folded into the resolved options and so
    into the key.
    """
    store = default_cache() if cache == "default" else cache
    if options is None:
        options = ExplainOptions()
    limits = limits or get_settings().limits
    text_a = check_text(text_a, "A", limits.max_text_chars)
    text_b = check_text(text_b, "B", limits.max_text_chars)
    loaded = engine.as_model(model, None, limits.device) if isinstance(model, str) else model
    if store is None or not isinstance(loaded, LoadedModel):  # only loaded models have an identity
        return engine.explain(loaded, text_a, text_b, options, pos=pos, run=run, limits=limits), False
    loaded, resolved = engine.resolve(loaded, options, {}, limits)
    identity = model_identity(loaded)
    assert identity is not None
    with _fingerprint_lock:
        _facts[identity.fingerprint] = ModelFacts.of(loaded)
    hit = store.lookup(identity, text_a, text_b, resolved, pos)
    if hit is not None:
        return hit, True
    result = engine.explain(loaded, text_a, text_b, resolved, pos=pos, run=run)
    store.store(identity, text_a, text_b, resolved, pos, result)
    if not _facts_complete(store.model_facts(identity.fingerprint)):
        store.store_model_facts(identity.fingerprint, ModelFacts.of(loaded))
    return result, False


def cached_explain_many(
    model: LoadedModel,
    pairs: Sequence[tuple[str, str]],
    options: ExplainOptions | RunOptions | None = None,
    *,
    pos: bool = True,
    run: Run | None = None,
    cache: CacheChoice = "default",
    limits: Limits | None = None,
) -> list[Attribution | InputError]:
    """explain_outcomes (attribution.core.many) with the cache in front: each pair's result, looked up
    first, the others computed together and stored after; a refused pair's InputError in its place.
    limits: the operator's (None: read from PAIRLENS_* now)."""
    store = default_cache() if cache == "default" else cache
    if options is None:
        options = ExplainOptions()
    limits = limits or get_settings().limits
    if store is None or not isinstance(model, LoadedModel):
        return many.explain_outcomes(model, pairs, options, pos=pos, run=run, limits=limits)
    model, resolved = engine.resolve(model, options, {}, limits)
    identity = model_identity(model)
    assert identity is not None
    with _fingerprint_lock:
        _facts[identity.fingerprint] = ModelFacts.of(model)
    outcomes: list[Attribution | InputError | None] = [None] * len(pairs)
    missing: list[int] = []
    for index, (text_a, text_b) in enumerate(pairs):
        try:
            chars = resolved.max_text_chars
            hit = store.lookup(identity, check_text(text_a, "A", chars), check_text(text_b, "B", chars), resolved, pos)
        except InputError as exc:
            outcomes[index] = exc
            continue
        if hit is None:
            missing.append(index)
        else:
            outcomes[index] = hit
    computed = many.explain_outcomes(model, [pairs[i] for i in missing], resolved, pos=pos, run=run)
    for index, outcome in zip(missing, computed, strict=True):
        outcomes[index] = outcome
        if isinstance(outcome, Attribution):
            store.store(identity, pairs[index][0], pairs[index][1], resolved, pos, outcome)
    if missing and not _facts_complete(store.model_facts(identity.fingerprint)):
        store.store_model_facts(identity.fingerprint, ModelFacts.of(model))
    return [o for o in outcomes if o is not None]


def lookup_unloaded(
    cache: ResultCache,
    model: str,
    text_a: str,
    text_b: str,
    options: ExplainOptions,
    pos: bool,
    limits: Limits | None = None,
) -> Attribution | None:
    """A cached result found without loading the model (its facts come from the cache), or None.

    For a server just restarted: a repeated request is answered before the model is loaded.
    Raises InputError for a layer the model does not have, as explain() would.
    """
    identity = model_identity(model, load=False)
    if identity is None:
        return None
    with _fingerprint_lock:
        facts: Any = _facts.get(identity.fingerprint)
    facts = facts or cache.model_facts(identity.fingerprint)
    if not _facts_complete(facts):
        return None
    resolved = options.for_model(facts, limits or get_settings().limits)
    return cache.lookup(identity, text_a, text_b, resolved, pos)


def _facts_complete(facts: ModelFacts | None) -> bool:
    """Facts that resolve options as the loaded model would (older caches lack the model's token limit)."""
    return facts is not None and facts.model_max_tokens is not None
