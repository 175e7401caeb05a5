"""Devices: the option, PAIRLENS_DEVICE, the CLI flag, and results equal across devices."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from attribution import ExplainOptions, InputError, explain, load_model
from attribution.cli import main
from attribution.devices import available_devices, check_device, resolve_device
from attribution.settings import get_settings

A = "A man is playing a guitar on stage."
B = "Someone performs music with an instrument."
HAS_CUDA = torch.cuda.is_available()


def test_names_are_canonical() -> None:
    assert check_device("cpu") == "cpu"
    assert check_device(" CPU ") == "cpu"
    assert check_device("auto") == "auto"
    assert check_device(torch.device("cpu")) == "cpu"
    assert available_devices()[0] == "cpu"
    assert resolve_device("auto") == ("cuda:0" if HAS_CUDA else "cpu")


@pytest.mark.parametrize("value", ["meta", "gpu", "cuda:x", "tpu", "", 3, None, ["cpu"]])
def test_unknown_devices_are_refused_naming_those_here(value: object) -> None:
    with pytest.raises(InputError, match=r"Unknown device .*devices on this machine: 'cpu'"):
        check_device(value)


@pytest.mark.parametrize("value", ["meta", "cuda:99", "gpu"])
def test_option_refuses_unknown_or_unavailable_devices(value: str) -> None:
    with pytest.raises(InputError, match="'cpu'"):
        ExplainOptions(device=value)


@pytest.mark.skipif(HAS_CUDA, reason="checks the message on a machine without CUDA")
def test_cuda_without_a_gpu_says_what_is_available() -> None:
    with pytest.raises(InputError, match=r"'cuda' is not available on this machine \(the devices here: 'cpu'\)"):
        ExplainOptions(device="cuda")


def test_environment_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PAIRLENS_DEVICE", "cpu")
    assert get_settings().device == "cpu" and resolve_device(get_settings().device, "PAIRLENS_DEVICE") == "cpu"
    monkeypatch.setenv("PAIRLENS_DEVICE", "")
    assert get_settings().device == "auto"
    monkeypatch.setenv("PAIRLENS_DEVICE", "meta")
    with pytest.raises(InputError, match="Unknown PAIRLENS_DEVICE 'meta'"):
        get_settings()


def test_cli_refuses_a_bad_device_before_loading(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explain", A, B, "--device", "meta"]) == 2
    err = capsys.readouterr().err
    assert "Unknown device 'meta'" in err and "'cpu'" in err and "Traceback" not in err


def test_cli_bad_environment_device(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("PAIRLENS_DEVICE", "quantum")
    assert main(["models"]) == 2
    assert "PAIRLENS_DEVICE" in capsys.readouterr().err


def test_explicit_cpu_equals_default(minilm, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("PAIRLENS_DEVICE", "cpu")
    assert load_model("all-MiniLM-L6-v2") is minilm  # the same cached model: loaded on the cpu
    assert minilm.device == "cpu"
    default = explain(minilm, A, B, steps=4, pos=False)
    explicit = explain(minilm, A, B, steps=4, pos=False, device="cpu")
    by_name = explain("all-MiniLM-L6-v2", A, B, steps=4, pos=False, device="cpu")
    assert isinstance(explicit.matrix, np.ndarray)
    np.testing.assert_array_equal(default.matrix, explicit.matrix)
    np.testing.assert_array_equal(default.matrix, by_name.matrix)


@pytest.mark.skipif(not HAS_CUDA, reason="needs CUDA (torch.cuda.is_available() is False on this machine)")
@pytest.mark.parametrize("layer", [0, None])
def test_cuda_equals_cpu(minilm, layer: int | None) -> None:  # type: ignore[no-untyped-def]
    cpu = explain(minilm, A, B, layer=layer, steps=8, pos=False, device="cpu")
    gpu = explain(minilm, A, B, layer=layer, steps=8, pos=False, device="cuda")  # a copy loaded on the GPU
    assert load_model("all-MiniLM-L6-v2", device="cuda").device == "cuda:0"
    assert isinstance(gpu.matrix, np.ndarray) and gpu.matrix.shape == cpu.matrix.shape
    scale = np.abs(cpu.matrix).max()
    assert np.abs(gpu.matrix - cpu.matrix).max() <= 1e-4 * scale
    assert gpu.score == pytest.approx(cpu.score, rel=1e-4)
    assert gpu.target == pytest.approx(cpu.target, rel=1e-4)
