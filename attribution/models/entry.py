"""Enter any Hugging Face encoder at layer L by running the model's own forward from there.

    entry = Entry(st)                    refuses what cannot be entered (ModelError, with the reason)
    entry.hidden_states(input_ids)[L]    the input of encoder layer L, (B, S, H), as the model computes it
    entry.tail(L, prompt_length)(x)      the pooled embedding (B, D), before Normalize, computed from x at layer L
    entry.self_check(input_ids, f)       tail_L(h_L) == f at every L (run once at load time)

How the tail is built (no layer re-implemented, no hooks, nothing shared is written to):

1. A copy-on-write *view* of the HF model: the model and every module on the path down to its layer list
   are shallow copies with their own child dicts (and their own trimmed copy of the config); the layer list
   becomes a new ModuleList holding the SAME layer objects, layers[L:].
2. The embedding module (the child holding `get_input_embeddings()`, taken where its path leaves the
   layers' path: BERT `embeddings`, Qwen3 `embed_tokens`, T5 `shared`) becomes a pass-through that returns
   `inputs_embeds`, so the view's forward called with `inputs_embeds=x` feeds x straight into layer L.
   Masks (bidirectional, causal, sliding windows), rotary tables, relative position bias and final norms
   all come from the model's own code.
3. Index-based facts that slicing breaks are repaired in the view: the config's layer counts and every
   `*layer_types` list are sliced to layers[L:], and the rows of `ENTRY_FACTS` cover what cannot be
   discovered (Electra's embedding projection, DeBERTa-v2's conv after layer 0, T5's bias owned by block 0).
4. sentence-transformers' own modules after the Transformer (Pooling, Dense, LayerNorm) run on a
   features dict, up to (not including) Normalize.

At L = num_layers the tail is the head alone: hidden_states[num_layers] is the model's last_hidden_state
(after any final norm). Views hold only references; one is built per layer, under a lock, and cached. Under
torch.func.vmap/jvp everything the model builds from shapes (masks, position ids, rotary tables, bias) is
unbatched and no Python branch reads a batched value. Eager attention is required: forward-mode AD of
CPU scaled-dot-product attention kernels is not implemented in torch.
"""

from __future__ import annotations

import copy
import inspect
import math
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..compat import check_architecture
from ..devices import device_of
from ..errors import ModelError

Tail = Callable[[torch.Tensor], torch.Tensor]  # (B, S, H) hidden states at layer L -> (B, D)


@dataclass(frozen=True)
class EntryFacts:
    """What cannot be discovered about entering an architecture at layer L (one row per architecture).

    extra_entry: paths (from the HF model) of modules the forward applies between the embedding module and
        layer 0 besides the embedding module itself; they become pass-throughs too.
    first_layer_only: paths of modules the stack applies after layer 0's call only (keyed on the loop index,
        not on the layer); dropped from the view when entering at L > 0.
    shared_bias: (path inside a layer to its attention, attribute of the bias module, its flag attribute) of a
        relative position bias that only layer 0 owns and computes and passes on; entering at L > 0, layer L's
        attention (a copy) borrows layer 0's bias module and computes it.
    """

    extra_entry: tuple[str, ...] = ()
    first_layer_only: tuple[str, ...] = ()
    shared_bias: tuple[str, str, str] | None = None


_T5_BIAS = EntryFacts(shared_bias=("layer.0.SelfAttention", "relative_attention_bias", "has_relative_attention_bias"))

ENTRY_FACTS: dict[str, EntryFacts] = {
    "electra": EntryFacts(extra_entry=("embeddings_project",)),  # `if hasattr(self, "embeddings_project")`
    "deberta-v2": EntryFacts(first_layer_only=("encoder.conv",)),  # `if i == 0 and self.conv is not None`
    "t5": _T5_BIAS,
    "mt5": _T5_BIAS,
}

# Checked end to end in tests (tiny models, every layer, against the per-dimension autograd oracle).
# Other transformers architectures are entered the same way, guarded by `Entry.self_check` at load time.
TESTED_ARCHITECTURES = (
    "bert", "roberta", "xlm-roberta", "mpnet", "distilbert", "electra", "deberta-v2", "modernbert",
    "nomic_bert", "t5", "qwen3", "gemma3_text",
)  # fmt: skip

# Architectures whose layers need more than the hidden states at layer L.
NOT_ENTERABLE: dict[str, str] = {
    "embedding_gemma2": "its layers take a per-layer input (PLE) computed from the token ids, which the hidden "
    "states at layer L do not carry",
    "embedding_gemma2_text": "its layers take a per-layer input (PLE) computed from the token ids, which the "
    "hidden states at layer L do not carry",
    "gemma3n_text": "its layers take per-layer inputs (PLE) and AltUp streams besides the hidden states",
}

# sentence-transformers modules that may follow the Transformer (before Normalize): they read only
# `token_embeddings` / `sentence_embedding` (and `prompt_length`), so they run unchanged on any tail.
HEAD_MODULES = ("Pooling", "Dense", "LayerNorm", "Dropout")
_NUM_LAYER_KEYS = ("num_hidden_layers", "num_layers", "n_layers", "n_layer")
SUPPORTED_TEXT = "PairLens supports sentence-transformers models whose first module is a Transformer " + (
    "running a transformers encoder (tested: " + ", ".join(TESTED_ARCHITECTURES) + "), followed by Pooling "
    "and optional Dense / Normalize modules."
)


# ----------------------------------------------------------------------------------------------------- checks


def transformer_and_head(st: Any, display: str = "the model") -> tuple[Any, Any, list[nn.Module], bool]:
    """(Transformer module, HF model, head modules up to Normalize, normalized). ModelError when not enterable."""
    modules = list(st)
    kinds = [type(m).__name__ for m in modules]
    if not modules:
        raise ModelError(f"'{display}' has no modules. {SUPPORTED_TEXT}")
    first, kind = modules[0], kinds[0]
    if kind in ("StaticEmbedding", "WordEmbeddings", "BoW"):
        raise ModelError(
            f"'{display}' starts with a {kind} module: static token embeddings have no encoder layers to attribute "
            f"through (integrated Jacobians need hidden states at a layer). {SUPPORTED_TEXT}"
        )
    hf = getattr(first, "auto_model", None)
    if kind != "Transformer" or hf is None:
        raise ModelError(f"'{display}' starts with a {kind} module, not a Transformer ({kinds}). {SUPPORTED_TEXT}")
    backend = getattr(first, "backend", "torch")
    if backend != "torch":
        raise ModelError(f"'{display}' runs on the '{backend}' backend; PairLens needs the torch backend.")
    task = getattr(first, "transformer_task", "feature-extraction")
    if task != "feature-extraction":
        raise ModelError(
            f"'{display}': its Transformer module runs the '{task}' task; only feature-extraction encoders can be "
            f"entered at a layer. {SUPPORTED_TEXT}"
        )
    modality = (getattr(first, "modality_config", None) or {}).get("text")
    if isinstance(modality, dict) and modality.get("method", "forward") != "forward":
        raise ModelError(f"'{display}': its Transformer module calls '{modality['method']}', not the model's forward.")
    config = hf.config
    # transformers 4.x keeps is_encoder_decoder=True in a T5EncoderModel's config: a decoder module decides.
    if getattr(config, "is_encoder_decoder", False) and "decoder" in dict(hf.named_children()):
        raise ModelError(
            f"'{display}' is an encoder-decoder ({type(hf).__name__}); PairLens explains encoders only. Save the "
            "model with its encoder alone (T5EncoderModel, as sentence-T5 and GTR do) to explain it."
        )
    class_module = type(hf).__module__
    if not class_module.startswith("transformers."):  # e.g. transformers_modules.<repo>.modeling_xxx
        raise ModelError(
            f"'{display}' uses custom modelling code ({type(hf).__name__} from {class_module}, trust_remote_code); "
            "PairLens never runs remote code and enters only architectures implemented in transformers itself. "
            f"{SUPPORTED_TEXT}"
        )
    attention = getattr(config, "_attn_implementation", None) or "eager"
    if attention != "eager":
        raise ModelError(
            f"'{display}' runs '{attention}' attention; PairLens needs eager attention (forward-mode "
            "differentiation of the fused CPU kernels is not implemented in torch): load it with "
            "model_kwargs={'attn_implementation': 'eager'}, as load_model does."
        )
    if hasattr(hf, "peft_config"):
        raise ModelError(f"'{display}' is a PEFT adapter: merge it (merge_and_unload) and save the model first.")
    arch = str(getattr(config, "model_type", "?"))
    if arch in NOT_ENTERABLE:
        raise ModelError(f"'{display}' is a {arch} model, which cannot be entered at a layer: {NOT_ENTERABLE[arch]}.")
    check_architecture(arch, display)
    head: list[nn.Module] = []
    normalized = False
    for module, name in zip(modules[1:], kinds[1:], strict=True):
        if name == "Normalize" and not normalized:
            normalized = True
        elif name in HEAD_MODULES and not normalized:
            head.append(module)
        else:
            where = "after Normalize" if normalized else "after the Transformer"
            raise ModelError(
                f"'{display}' has a {name} module {where} ({kinds}); PairLens supports "
                + ", ".join(HEAD_MODULES)
                + " and a final Normalize there."
            )
    if not any(type(m).__name__ == "Pooling" for m in head):
        raise ModelError(f"'{display}' has no Pooling module ({kinds}); PairLens needs one to get a text embedding.")
    return first, hf, head, normalized


def num_layers_of(config: Any) -> int:
    for key in _NUM_LAYER_KEYS:
        value = getattr(config, key, None)
        if isinstance(value, int) and value > 0:
            return value
    raise ModelError(f"Cannot tell how many layers a '{getattr(config, 'model_type', '?')}' model has.")


# ----------------------------------------------------------------------------------------------------- discovery


def _get(root: nn.Module, path: str) -> Any:
    module: Any = root
    for part in path.split(".") if path else ():
        module = module[int(part)] if part.isdigit() and isinstance(module, nn.ModuleList) else getattr(module, part)
    return module


def find_layers(hf: nn.Module, num_layers: int) -> str:
    """Attribute path of the encoder's layer list: the shallowest ModuleList of num_layers modules of one class."""
    found: list[tuple[int, str]] = []

    def walk(module: nn.Module, path: str) -> None:
        for name, child in module.named_children():
            child_path = f"{path}.{name}" if path else name
            if isinstance(child, nn.ModuleList):
                if len(child) == num_layers and len({type(m) for m in child}) == 1:
                    found.append((child_path.count("."), child_path))
                continue  # lists inside layers are not the encoder's list
            walk(child, child_path)

    walk(hf, "")
    if not found:
        raise ModelError(f"No list of {num_layers} layers found in '{type(hf).__name__}'.")
    depth = min(d for d, _ in found)
    paths = [p for d, p in found if d == depth]
    if len(paths) > 1:
        raise ModelError(f"'{type(hf).__name__}' has several candidate layer lists: {paths}.")
    return paths[0]


def find_embedding_module(hf: Any, layers_path: str) -> str:
    """Path of the module whose output is fed to layer 0: the child holding the input embeddings, taken at
    the first level where its path leaves the path to the layers (BERT 'embeddings', Qwen3 'embed_tokens')."""
    target = hf.get_input_embeddings()
    emb_path = next((name for name, m in hf.named_modules() if m is target), None)
    if emb_path is None:
        raise ModelError(f"'{type(hf).__name__}' does not expose its input embeddings.")
    emb_parts, layer_parts = emb_path.split("."), layers_path.split(".")
    common = 0
    while common < min(len(emb_parts), len(layer_parts)) and emb_parts[common] == layer_parts[common]:
        common += 1
    return ".".join(emb_parts[: common + 1])


# ----------------------------------------------------------------------------------------------------- the view


class PassThrough(nn.Module):
    """Stands in for an embedding module: returns `inputs_embeds` (bound by the original forward's signature),
    or its first argument when the original takes no `inputs_embeds` (a projection, a token lookup)."""

    def __init__(self, original: nn.Module) -> None:
        super().__init__()
        self._signature = inspect.signature(original.forward)
        # DistilBERT's embeddings call it `input_embeds` in transformers 4.x
        names = [n for n in ("inputs_embeds", "input_embeds") if n in self._signature.parameters]
        self._embeds_name = names[0] if names else None

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        if self._embeds_name is not None:
            value = self._signature.bind_partial(*args, **kwargs).arguments.get(self._embeds_name)
            if value is None:
                raise ModelError("The entered model called its embedding module without inputs_embeds.")
            return value
        return args[0] if args else next(iter(kwargs.values()))


def _shallow(module: nn.Module) -> nn.Module:
    """A new module object sharing every parameter, buffer, hook and child, with its own child dict."""
    clone = copy.copy(module)  # a new __dict__ whose _modules is still the original's dict: replace it
    clone.__dict__["_modules"] = OrderedDict(module._modules)
    return clone


class _View:
    """Copy-on-write tree over a module: `set(path, new)` copies the ancestors of `path`, never the originals."""

    def __init__(self, root: nn.Module) -> None:
        self.root = _shallow(root)
        self._copied: dict[str, nn.Module] = {"": self.root}

    def module(self, path: str) -> nn.Module:
        """The copy at `path` (copying it and its ancestors on first use)."""
        if path in self._copied:
            return self._copied[path]
        parent_path, _, name = path.rpartition(".")
        parent = self.module(parent_path)
        child = parent._modules[name]
        if child is None:
            raise ModelError(f"No module at '{path}'.")
        clone = _shallow(child)
        parent._modules[name] = clone
        self._copied[path] = clone
        return clone

    def set(self, path: str, value: nn.Module | None) -> None:
        parent_path, _, name = path.rpartition(".")
        self.module(parent_path)._modules[name] = value

    def copies(self) -> list[nn.Module]:
        return list(self._copied.values())


def _trimmed_config(config: Any, start: int, total: int) -> Any:
    """A copy of `config` describing layers[start:]: layer counts and per-layer type lists sliced."""
    trimmed = copy.copy(config)
    # A saved config may ask for hidden states: a view must never capture them, or transformers would install
    # its capturing hooks a second time on the shared layers (through the view) and double every capture.
    for key in ("output_hidden_states", "output_attentions"):
        if getattr(config, key, False):
            setattr(trimmed, key, False)
    for key in _NUM_LAYER_KEYS:
        if getattr(config, key, None) == total:
            setattr(trimmed, key, total - start)
    for key, value in vars(config).items():
        if key.endswith("layer_types") and isinstance(value, (list, tuple)) and len(value) == total:
            setattr(trimmed, key, type(value)(value[start:]))
    return trimmed


def entered_model(hf: nn.Module, layer: int, *, layers_path: str, embedding_path: str, facts: EntryFacts) -> nn.Module:
    """A view of `hf` whose forward(inputs_embeds=x) runs layers[layer:] (and what follows them) on x."""
    all_layers = _get(hf, layers_path)
    total = len(all_layers)
    view = _View(hf)
    layers = list(all_layers)[layer:]
    if facts.shared_bias is not None and layer > 0 and layers:
        attn_path, bias_attr, flag_attr = facts.shared_bias
        first = _View(layers[0])
        attention = first.module(attn_path)
        attention.__dict__[flag_attr] = True
        attention._modules[bias_attr] = getattr(all_layers[0].get_submodule(attn_path), bias_attr)
        layers[0] = first.root
    view.set(layers_path, nn.ModuleList(layers))
    for path in (embedding_path, *facts.extra_entry):
        view.set(path, PassThrough(_get(hf, path)))
    if layer > 0:
        for path in facts.first_layer_only:
            view.set(path, None)
    trimmed: dict[int, Any] = {}  # every copied module holding a config gets the same trimmed copy
    for module in view.copies():
        config = module.__dict__.get("config")
        if config is not None and hasattr(config, "to_dict"):
            if id(config) not in trimmed:
                trimmed[id(config)] = _trimmed_config(config, layer, total)
            module.__dict__["config"] = trimmed[id(config)]
    return view.root


# ----------------------------------------------------------------------------------------------------- entry


class Entry:
    """A loaded SentenceTransformer (eval mode) entered at any layer. Shared, never mutated after construction."""

    def __init__(self, st: Any, display: str = "the model") -> None:
        self.transformer, self.hf, head, self.normalized = transformer_and_head(st, display)
        self.head: tuple[nn.Module, ...] = tuple(head)
        self.display = display
        if self.hf.training or any(m.training for m in self.head):
            raise ModelError(f"'{display}' is in training mode (dropout on): call .eval() before explaining it.")
        self.architecture = str(getattr(self.hf.config, "model_type", "?"))
        self.facts = ENTRY_FACTS.get(self.architecture, EntryFacts())
        self.num_layers = num_layers_of(self.hf.config)
        self.layers_path = find_layers(self.hf, self.num_layers)
        self.embedding_path = find_embedding_module(self.hf, self.layers_path)
        params = inspect.signature(self.hf.forward).parameters
        self.fixed_kwargs: dict[str, Any] = {"use_cache": False} if "use_cache" in params else {}
        self._views: dict[int, nn.Module] = {}
        self._lock = threading.Lock()
        self.device = device_of(self.hf)  # where the weights live; token ids are moved here

    def on_device(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Token ids (or any tensor) moved to the model's device (a no-op when already there)."""
        return input_ids.to(self.device)

    # -- the model's own path --------------------------------------------------------------------------

    def hidden_states(self, input_ids: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Index L = the input of layer L, each (B, S, H); index num_layers = last_hidden_state. All attended."""
        input_ids = self.on_device(input_ids)
        out = self.hf(
            input_ids=input_ids,
            attention_mask=torch.ones_like(input_ids),
            output_hidden_states=True,
            return_dict=True,
            **self.fixed_kwargs,
        )
        states = tuple(out.hidden_states)
        if len(states) != self.num_layers + 1:
            raise ModelError(
                f"'{self.display}' returned {len(states)} hidden states for {self.num_layers} layers; not supported."
            )
        return states

    def last_hidden_state(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """The model's output token states (B, S, H) for a batch."""
        out = self.hf(
            input_ids=self.on_device(input_ids),
            attention_mask=self.on_device(attention_mask),
            return_dict=True,
            **self.fixed_kwargs,
        )
        return out.last_hidden_state

    def pool(
        self, token_states: torch.Tensor, attention_mask: torch.Tensor | None = None, prompt_length: int | None = None
    ) -> torch.Tensor:
        """sentence-transformers' own head (Pooling, Dense, ...) on (B, S, H) last-layer states -> (B, D).

        prompt_length: sentence-transformers' count of prompt tokens; Pooling(include_prompt=False) leaves
        positions [0, prompt_length) out, Pooling(include_prompt=True) ignores it.
        """
        if attention_mask is None:
            attention_mask = torch.ones(token_states.shape[:2], dtype=torch.int64, device=token_states.device)
        features: dict[str, Any] = {"token_embeddings": token_states, "attention_mask": attention_mask}
        if prompt_length:
            features["prompt_length"] = int(prompt_length)
        for module in self.head:
            features = module(features)
        return features["sentence_embedding"]

    # -- the tail --------------------------------------------------------------------------------------

    def view(self, layer: int) -> nn.Module:
        """The model entered at `layer` (built once, cached)."""
        with self._lock:
            if layer not in self._views:
                self._views[layer] = entered_model(
                    self.hf, layer, layers_path=self.layers_path, embedding_path=self.embedding_path, facts=self.facts
                )
            return self._views[layer]

    def tail(self, layer: int, prompt_length: int | None = None) -> Tail:
        """f from layer `layer` on: (B, S, H) hidden states at the input of that layer -> (B, D), pre-Normalize.

        Pure: no hooks, no state on shared modules, so threads may call it at once.
        """
        if not 0 <= layer <= self.num_layers:
            raise ModelError(f"layer must be from 0 to {self.num_layers} (got {layer}).")
        if layer == self.num_layers:
            return lambda x: self.pool(x, None, prompt_length)
        model = self.view(layer)
        fixed = self.fixed_kwargs

        def tail(x: torch.Tensor) -> torch.Tensor:
            mask = torch.ones(x.shape[:2], dtype=torch.int64, device=x.device)
            out = model(inputs_embeds=x, attention_mask=mask, return_dict=True, **fixed)
            return self.pool(out.last_hidden_state, None, prompt_length)

        return tail

    # -- guard -----------------------------------------------------------------------------------------

    def self_check(self, input_ids: torch.Tensor, expected: torch.Tensor, rtol: float = 1e-4) -> list[float]:
        """max |tail_L(h_L) - expected| at every L (expected: the model's own pooled embedding, (1, D)).

        Raises ModelError when entering at some layer does not reproduce it.
        """
        errors: list[float] = []
        failure = ""
        with torch.inference_mode():
            states = self.hidden_states(input_ids)
            for layer in range(self.num_layers + 1):
                try:
                    got = self.tail(layer)(states[layer])
                    errors.append(float((got - expected).abs().max()))
                except Exception as exc:  # any failure to enter is a refusal, not a crash later
                    errors.append(math.inf)
                    failure = failure or f"; {type(exc).__name__}: {str(exc).strip()[:200]}"
        scale = max(1.0, float(expected.abs().max()))
        bad = [layer for layer, e in enumerate(errors) if not e <= rtol * scale]
        if bad:
            raise ModelError(
                f"Entering '{self.display}' ({self.architecture}) at layer(s) {bad} does not reproduce its embedding "
                f"(max difference {max(errors):.2e}{failure}), so it cannot be explained. {SUPPORTED_TEXT}"
            )
        return errors

    def prompt_length(self, prompt: str | None) -> int | None:
        """sentence-transformers' prompt length: the prompt tokenized alone (a leading CLS/BOS included),
        minus a trailing special token; what Pooling(include_prompt=False) leaves out. None without a prompt."""
        if not prompt:
            return None
        measure = getattr(self.transformer, "_get_prompt_length", None)
        if measure is not None:
            value = measure(prompt)
            return None if value is None else int(value)
        tokenizer = self.transformer.tokenizer
        ids = tokenizer(prompt, truncation=True, max_length=self.transformer.max_seq_length)["input_ids"]
        return len(ids) - (1 if ids and ids[-1] in tokenizer.all_special_ids else 0)
