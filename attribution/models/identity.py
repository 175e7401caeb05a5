"""Which bytes define a model folder: a content hash, so that a result cache cannot be poisoned.

A folder's fingerprint is the sha256 of every file the loading pipeline may read (weights,
modules.json, config.json, sentence_bert_config.json, 1_Pooling/config.json, tokenizer files,
prompts, ...: every regular file except the weights of other runtimes, listed below), each
named by its path relative to the folder. Two folders differing in one byte of one of those
files have different fingerprints, whatever their names, sizes and modification times.

Hashing all-MiniLM-L6-v2 (87 MiB) took 0.51 s on a shared 2-core machine (15 ms again, unchanged:
one stat a file); each file's hash is kept by (real path,
device, inode, size, modification and change time), so it is computed once per load and a
later fingerprint of an unchanged folder only stats its files. `record_load` keeps the
fingerprint of the bytes a model was loaded from, so that results of a loaded model are filed
under those bytes even when the folder changes on disk afterwards.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections import OrderedDict
from pathlib import Path

# Files that PyTorch sentence-transformers never reads: weights for other runtimes.
SKIPPED_DIRS = frozenset({"onnx", "openvino", ".git", ".cache"})
SKIPPED_SUFFIXES = frozenset({".onnx", ".h5", ".msgpack", ".ot", ".tflite"})
PREFIX = "content:"
_MEMO_SIZE = 4096

_file_hashes: OrderedDict[tuple[str, int, int, int, int, int], str] = OrderedDict()
_loaded: dict[str, str] = {}  # model source folder -> fingerprint of the bytes it was loaded from
_lock = threading.Lock()


def model_files(folder: Path) -> list[Path]:
    """The files of `folder` that define the model, sorted by relative path."""
    found: list[Path] = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if d not in SKIPPED_DIRS)
        for name in sorted(files):
            path = Path(root) / name
            if path.suffix.lower() not in SKIPPED_SUFFIXES:
                found.append(path)
    return sorted(found, key=lambda p: p.relative_to(folder).as_posix())


def file_digest(path: Path) -> str:
    """sha256 (hex) of one file's bytes, kept while its (real path, inode, size, times) stay the same."""
    stat = os.stat(path)
    key = (os.path.realpath(path), stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns)
    with _lock:
        known = _file_hashes.get(key)
        if known is not None:
            _file_hashes.move_to_end(key)
            return known
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    value = digest.hexdigest()
    after = os.stat(path)
    if (after.st_size, after.st_mtime_ns, after.st_ctime_ns) == key[3:]:  # not rewritten while read
        with _lock:
            _file_hashes[key] = value
            while len(_file_hashes) > _MEMO_SIZE:
                _file_hashes.popitem(last=False)
    return value


def folder_fingerprint(folder: Path) -> str:
    """ "content:" + sha256 over (relative path, sha256 of the bytes) of every file in `model_files`.

    A file that vanishes while hashed counts as absent (OSError on the folder itself propagates).
    """
    folder = Path(folder)
    digest = hashlib.sha256()
    for path in model_files(folder):
        try:
            file_hash = file_digest(path)
        except OSError:
            continue
        digest.update(f"{path.relative_to(folder).as_posix()}\0{file_hash}\n".encode("utf-8", "surrogateescape"))
    return PREFIX + digest.hexdigest()[:40]


def record_load(source: str) -> str | None:
    """Fingerprint a folder about to be loaded and remember it for that source (None for a hub id)."""
    if not os.path.isdir(source):
        return None
    fingerprint = folder_fingerprint(Path(source))
    with _lock:
        _loaded[source] = fingerprint
    return fingerprint


def loaded_fingerprint(source: str) -> str | None:
    """The fingerprint recorded when `source` was last loaded in this process, or None."""
    with _lock:
        return _loaded.get(source)
