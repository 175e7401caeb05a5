"""Which torch device computes: names checked against this machine, "auto" resolved.

    check_device("cuda")   -> "cuda:0" where a GPU is present, else InputError naming the devices here
    resolve_device("auto") -> "cuda:0" when CUDA is available, else "cpu" (an edge passes PAIRLENS_DEVICE,
                              attribution.settings.get_settings().device, where no device was asked for)

A model is loaded on one device (`load_model(name, device=)`); its hidden states, reference
states, embeddings and every node evaluation live there, and results come back as CPU NumPy.
"mps" (Apple GPUs) is accepted where torch reports it available; "auto" never picks it.
"""

from __future__ import annotations

import re

import torch

from .errors import InputError

AUTO = "auto"
_NAME = re.compile(r"(cpu|cuda|mps)(?::([0-9]{1,3}))?")


def available_devices() -> list[str]:
    """The devices this machine can compute on: "cpu", then "cuda:i" per GPU, then "mps" if available."""
    found = ["cpu"]
    if torch.cuda.is_available():
        found += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        found.append("mps")
    return found


def check_device(value: object, name: str = "device") -> str:
    """`value` as a canonical device name ("auto", "cpu", "cuda:0", "mps") available here; else InputError.

    "cuda" means the first GPU ("cuda:0"), "mps:0" is "mps". `name` says where the value came
    from (the option, or PAIRLENS_DEVICE) in the message.
    """
    here = ", ".join(f"'{d}'" for d in available_devices())
    if isinstance(value, torch.device):
        value = str(value)
    text = value.strip().lower() if isinstance(value, str) else None
    if text == AUTO:
        return AUTO
    match = _NAME.fullmatch(text) if text is not None else None
    if match is None:
        shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:59] + "…"
        raise InputError(f"Unknown {name} {shown}: choose 'auto' or one of the devices on this machine: {here}.")
    kind, index = match.group(1), match.group(2)
    if kind == "cpu":
        canonical = "cpu"
    elif kind == "mps":
        canonical = "mps"
    else:
        canonical = f"cuda:{int(index or 0)}"
    if canonical not in available_devices():
        raise InputError(
            f"The {name} '{text}' is not available on this machine (the devices here: {here}): choose one of "
            "them, or 'auto' (CUDA when present, else the CPU)."
        )
    return canonical


def resolve_device(value: object = AUTO, name: str = "device") -> str:
    """The concrete device for `value`: "auto" -> "cuda:0" if available, else "cpu". `name` says where the
    value came from in messages (the option, or PAIRLENS_DEVICE)."""
    device = check_device(value, name)
    if device == AUTO:
        return "cuda:0" if torch.cuda.is_available() else "cpu"
    return device


def device_of(module: torch.nn.Module) -> str:
    """The canonical device of a module's first parameter ("cpu" for a module without any)."""
    for param in module.parameters():
        device = param.device
        if device.type == "cuda":
            return f"cuda:{device.index if device.index is not None else torch.cuda.current_device()}"
        return device.type
    return "cpu"
