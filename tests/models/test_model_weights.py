"""A model folder whose weights do not match its config.json (more layers claimed, a tensor missing, a tensor
with no place in the model): a ModelError that says what to do, through the loader, the CLI and the page."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import messages
from streamlit.testing.v1 import AppTest

from attribution.cli import main

APP = str(Path(__file__).resolve().parents[2] / "app.py")


@pytest.fixture(scope="module")
def mismatched_models(tmp_path_factory: pytest.TempPathFactory, minilm_dir: Path) -> dict[str, Path]:
    """A tiny BERT, one whose config.json claims 4 layers (2 in its weights), one missing a tensor."""
    import shutil

    from safetensors.torch import load_file, save_file
    from tiny_models import build_tiny_model

    base = tmp_path_factory.mktemp("mismatched")
    good = build_tiny_model(base / "good", "bert", minilm_dir)
    more = base / "more-layers"
    shutil.copytree(good, more)
    config = json.loads((more / "config.json").read_text(encoding="utf-8"))
    assert config["num_hidden_layers"] == 2
    config["num_hidden_layers"] = 4
    (more / "config.json").write_text(json.dumps(config), encoding="utf-8")
    missing = base / "missing-tensor"
    shutil.copytree(good, missing)
    weights = load_file(missing / "model.safetensors")
    del weights["encoder.layer.1.attention.self.query.weight"]
    save_file(weights, missing / "model.safetensors", metadata={"format": "pt"})
    extra = base / "extra-tensor"
    shutil.copytree(good, extra)
    weights = load_file(extra / "model.safetensors")
    weights["encoder.layer.5.output.dense.weight"] = weights["encoder.layer.1.output.dense.weight"].clone()
    save_file(weights, extra / "model.safetensors", metadata={"format": "pt"})
    return {"good": good, "more layers": more, "missing tensor": missing, "extra tensor": extra}


@pytest.mark.parametrize(
    ("case", "needle"),
    [
        ("more layers", "32 weights are missing from its files (e.g. encoder.layer.2."),
        ("missing tensor", "1 weight is missing from its files (e.g. encoder.layer.1.attention.self.query.weight)"),
        ("extra tensor", "1 weight is in its files that the model has no place for"),
    ],
)
def test_model_weights_that_do_not_match_the_config_are_a_model_error(
    mismatched_models: dict[str, Path], case: str, needle: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from attribution import ModelError
    from attribution.models.registry import _load_uncached

    assert _load_uncached("good", str(mismatched_models["good"])).num_layers == 2
    with pytest.raises(ModelError, match=r"does not match its config\.json") as info:
        _load_uncached(case, str(mismatched_models[case]))
    assert needle in str(info.value) and "re-save or re-download" in str(info.value)
    code = main(["explain", "A cat.", "A dog.", "--model", str(mismatched_models[case]), "--steps", "1"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and needle in err


def test_page_refuses_a_custom_model_with_missing_weights(
    mismatched_models: dict[str, Path], monkeypatch: pytest.MonkeyPatch, _fresh_caches: None
) -> None:
    monkeypatch.setenv("PAIRLENS_ALLOW_CUSTOM_MODELS", "1")
    at = AppTest.from_file(APP, default_timeout=300)
    at.query_params["a"] = "A cat."
    at.query_params["b"] = "A dog."
    at.query_params["model"] = str(mismatched_models["more layers"])
    at.run()
    assert not at.exception, messages(at.exception)
    assert "does not match its config.json" in messages(at.error) and not at.get("plotly_chart")
