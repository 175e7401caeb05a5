"""The attribution backend as a service: a fair scheduler, jobs, a persistent result cache, HTTP.

    scheduler.py  FairGate (which waiting computation's chunk runs next) and JobManager (worker
                  threads: submit -> job id, status with progress and ETA, cancel, result)
    cache.py      ResultCache: results on disk under PAIRLENS_HOME (SQLite, WAL), bounded, shared
                  by processes; cached_explain() looks up before computing and stores after
    http.py       the FastAPI app behind `pairlens serve` (imports fastapi; load it only to serve)

The page runs a JobManager in-process, or talks to `pairlens serve` when PAIRLENS_BACKEND_URL
is set; the CLI and the corpus analysis share the cache.
"""

from .cache import ResultCache, cached_explain, default_cache
from .scheduler import (
    Busy,
    ExplainRequest,
    FairGate,
    JobFailed,
    JobManager,
    JobState,
    JobStatus,
    NotFinished,
    UnknownJob,
)

__all__ = [
    "Busy",
    "ExplainRequest",
    "FairGate",
    "JobFailed",
    "JobManager",
    "JobState",
    "JobStatus",
    "NotFinished",
    "ResultCache",
    "UnknownJob",
    "cached_explain",
    "default_cache",
]
