"""Tiny randomly initialised sentence transformers of every supported architecture, built offline.

Each build saves a sentence-transformers folder (Transformer -> Pooling -> [Dense...] -> [Normalize]).
Tokenizers are assembled offline with each real family's special-token template: MiniLM's WordPiece
vocabulary for the BERT family, small byte-level BPE / Unigram models trained on `CORPUS` for the rest.

    bert-like   [CLS] ... [SEP]          roberta/xlm-r/mpnet  <s> ... </s>
    t5          ... </s>   (no BOS)      qwen3                ... <|endoftext|>  (EOS appended, Qwen3-Embedding)
    gemma3      <bos> ... <eos>          (EmbeddingGemma)

Per-layer facts are made to matter: ModernBERT, Qwen3 and Gemma3 mix sliding and full attention with a
window shorter than the test texts, Electra projects a 16-dim embedding to 32, DeBERTa-v2 has its conv
after layer 0 and relative attention, T5 keeps its relative bias in block 0 only. Matrices are scaled up
(random init is std 0.02) so the tails are clearly nonlinear.
"""

from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

CORPUS = [
    "A man is playing a guitar on stage.",
    "Someone performs music with an instrument.",
    "The cat sleeps on the warm windowsill.",
    "Stocks fell sharply after the announcement.",
    "Don't forget the meeting at 10:30, it's important!",
    "Ünïcödé café naïve résumé 東京 😀",
    "query: what is the capital of France? search_query: search_document: task: search result | query: ",
]


@dataclass(frozen=True)
class Spec:
    """One tiny model's defaults: its sentence-transformers head and prompts."""

    pooling: str = "mean"
    dense: tuple[int, ...] = ()  # output sizes of Dense modules after pooling (identity activation)
    weight_scale: float = 5.0
    include_prompt: bool = True
    prompts: dict[str, str] = field(default_factory=dict)


SPECS: dict[str, Spec] = {
    "bert": Spec("mean"),
    "roberta": Spec("cls"),
    "xlm-roberta": Spec("max"),
    "mpnet": Spec("mean", dense=(16,)),
    "distilbert": Spec("cls"),
    "electra": Spec("weightedmean"),  # embedding_size 16 -> hidden 32 through embeddings_project
    "deberta-v2": Spec("mean"),  # relative attention, conv after layer 0
    "modernbert": Spec("mean"),  # sliding / full attention per layer, final norm
    "nomic_bert": Spec(
        "mean", include_prompt=False, prompts={"query": "search_query: ", "document": "search_document: "}
    ),  # rotary; prompts left out of pooling
    "t5": Spec("mean", dense=(24,)),  # T5EncoderModel, relative bias in block 0, final_layer_norm
    "qwen3": Spec("lasttoken", prompts={"query": "Instruct: search\nQuery: ", "document": ""}),  # causal, sliding
    "gemma3_text": Spec(
        "mean",
        dense=(64, 32),
        weight_scale=3.0,  # at 5.0 layer 0's float32 Jacobians are ill-conditioned (1e-5 from a float64 oracle)
        prompts={"query": "task: search result | query: ", "document": "title: none | text: "},
    ),  # bidirectional (use_bidirectional_attention), sliding window, scaled embeddings
}
ARCHITECTURES = tuple(SPECS)


# --------------------------------------------------------------------------------------------- tokenizers


def _wordpiece(minilm_dir: Path, mpnet_specials: bool = False, inputs: list[str] | None = None) -> Any:
    """inputs: the tokenizer's model_input_names (DistilBERT's take no token_type_ids)."""
    from transformers import BertTokenizerFast, PreTrainedTokenizerFast

    # transformers 5 takes `vocab=`; the old `vocab_file=` is silently ignored and leaves a 5-token
    # vocabulary in which every word is [UNK].
    # transformers 4.x takes `vocab_file=` (make compat's oldest release).
    key = "vocab" if "vocab" in inspect.signature(BertTokenizerFast.__init__).parameters else "vocab_file"
    extra = {"model_input_names": inputs} if inputs else {}
    bert = BertTokenizerFast(**{key: str(minilm_dir / "vocab.txt")}, **extra)
    if not mpnet_specials:
        return bert
    from tokenizers.processors import BertProcessing

    backend = bert.backend_tokenizer
    backend.add_special_tokens(["<s>", "</s>", "<pad>"])
    backend.post_processor = BertProcessing(("</s>", backend.token_to_id("</s>")), ("<s>", backend.token_to_id("<s>")))
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token="<s>",
        eos_token="</s>",
        cls_token="<s>",
        sep_token="</s>",
        pad_token="<pad>",
        unk_token="[UNK]",
        mask_token="[MASK]",
    )


def _roberta_bpe() -> Any:
    """Byte-level BPE with RoBERTa's <s> ... </s> template (Ġ-marked subwords)."""
    from tokenizers import ByteLevelBPETokenizer
    from tokenizers.processors import RobertaProcessing
    from transformers import PreTrainedTokenizerFast

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(CORPUS * 5, vocab_size=400, special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
    bpe.post_processor = RobertaProcessing(("</s>", bpe.token_to_id("</s>")), ("<s>", bpe.token_to_id("<s>")))
    return PreTrainedTokenizerFast(
        tokenizer_object=bpe._tokenizer,
        bos_token="<s>",
        eos_token="</s>",
        cls_token="<s>",
        sep_token="</s>",
        pad_token="<pad>",
        unk_token="<unk>",
        mask_token="<mask>",
    )


def _templated_bpe(specials: list[str], template: str, **named: str) -> Any:
    """Byte-level BPE with a TemplateProcessing post-processor (Qwen3, Gemma3 style)."""
    from tokenizers import ByteLevelBPETokenizer
    from tokenizers.processors import TemplateProcessing
    from transformers import PreTrainedTokenizerFast

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(CORPUS * 5, vocab_size=420, special_tokens=specials)
    used = [t for t in specials if t in template.split()]
    bpe.post_processor = TemplateProcessing(
        single=template, pair=template.replace("$A", "$A $B"), special_tokens=[(t, bpe.token_to_id(t)) for t in used]
    )
    return PreTrainedTokenizerFast(tokenizer_object=bpe._tokenizer, **named)


def _t5_unigram() -> Any:
    """SentencePiece-style Unigram (▁-marked) with T5's template: the text then </s>, pad id 0."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from tokenizers.processors import TemplateProcessing
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.Unigram())
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    trainer = trainers.UnigramTrainer(vocab_size=300, special_tokens=["<pad>", "</s>", "<unk>"], unk_token="<unk>")
    tok.train_from_iterator(CORPUS * 5, trainer=trainer)
    tok.post_processor = TemplateProcessing(
        single="$A </s>", pair="$A </s> $B </s>", special_tokens=[("</s>", tok.token_to_id("</s>"))]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="</s>",
        pad_token="<pad>",
        unk_token="<unk>",
        model_input_names=["input_ids", "attention_mask"],  # as T5's tokenizer: sentence-transformers 3.x passes all
    )


def make_tokenizer(architecture: str, minilm_dir: Path) -> Any:
    """The tiny tokenizer of an architecture (the real family's template and fillers)."""
    if architecture in ("distilbert", "modernbert"):  # as their own tokenizers: sentence-transformers < 6 passes
        return _wordpiece(minilm_dir, inputs=["input_ids", "attention_mask"])  # whatever the tokenizer returns
    if architecture in ("bert", "electra", "deberta-v2", "nomic_bert"):
        return _wordpiece(minilm_dir)
    if architecture == "mpnet":
        return _wordpiece(minilm_dir, mpnet_specials=True)
    if architecture in ("roberta", "xlm-roberta", "bart"):
        return _roberta_bpe()
    if architecture == "t5":
        return _t5_unigram()
    if architecture == "qwen3":  # Qwen3-Embedding: pad is <|endoftext|>, also the appended EOS; no BOS, no UNK
        return _templated_bpe(
            ["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
            "$A <|endoftext|>",
            eos_token="<|endoftext|>",
            pad_token="<|endoftext|>",
        )
    if architecture == "gemma3_text":
        return _templated_bpe(
            ["<pad>", "<eos>", "<bos>", "<unk>", "<mask>"],
            "<bos> $A <eos>",
            bos_token="<bos>",
            eos_token="<eos>",
            pad_token="<pad>",
            unk_token="<unk>",
            mask_token="<mask>",
        )
    raise KeyError(architecture)


# --------------------------------------------------------------------------------------------- models


def make_hf_model(architecture: str, tokenizer: Any) -> Any:
    """A randomly initialised transformers model of `architecture`, hidden size 32, 2-3 layers, eager attention."""
    tf: Any = importlib.import_module("transformers")  # configs are strict; typed access would need stubs
    vocab = len(tokenizer)
    pad = tokenizer.pad_token_id
    bertish: dict[str, Any] = dict(
        vocab_size=vocab, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
        max_position_embeddings=130, pad_token_id=pad, attn_implementation="eager",
    )  # fmt: skip
    if architecture == "bert":
        return tf.BertModel(tf.BertConfig(**bertish), add_pooling_layer=False)
    if architecture == "roberta":
        return tf.RobertaModel(tf.RobertaConfig(**bertish), add_pooling_layer=False)
    if architecture == "xlm-roberta":
        return tf.XLMRobertaModel(tf.XLMRobertaConfig(**bertish), add_pooling_layer=False)
    if architecture == "mpnet":
        return tf.MPNetModel(tf.MPNetConfig(**bertish), add_pooling_layer=False)
    if architecture == "electra":
        return tf.ElectraModel(tf.ElectraConfig(**bertish, embedding_size=16))
    if architecture == "distilbert":
        return tf.DistilBertModel(
            tf.DistilBertConfig(
                vocab_size=vocab, dim=32, n_layers=2, n_heads=4, hidden_dim=64, max_position_embeddings=130,
                pad_token_id=pad, attn_implementation="eager",
            )
        )  # fmt: skip
    if architecture == "deberta-v2":
        config = tf.DebertaV2Config(
            **{k: v for k, v in bertish.items() if k != "attn_implementation"},
            relative_attention=True, position_buckets=8, max_relative_positions=16, pos_att_type=["p2c", "c2p"],
            position_biased_input=False, norm_rel_ebd="layer_norm", conv_kernel_size=3, conv_act="gelu",
            share_att_key=True, type_vocab_size=0,
        )  # fmt: skip
        return tf.DebertaV2Model(config)
    if architecture == "modernbert":
        return tf.ModernBertModel(
            tf.ModernBertConfig(
                vocab_size=vocab, hidden_size=32, intermediate_size=48, num_hidden_layers=3, num_attention_heads=4,
                max_position_embeddings=256, local_attention=4, global_attn_every_n_layers=2, pad_token_id=pad,
                bos_token_id=tokenizer.cls_token_id, eos_token_id=tokenizer.sep_token_id,
                cls_token_id=tokenizer.cls_token_id, sep_token_id=tokenizer.sep_token_id, attn_implementation="eager",
            )
        )  # fmt: skip
    if architecture == "nomic_bert":
        return tf.NomicBertModel(
            tf.NomicBertConfig(
                vocab_size=vocab, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
                max_position_embeddings=256, pad_token_id=pad, attn_implementation="eager",
            )
        )  # fmt: skip
    if architecture == "t5":
        return tf.T5EncoderModel(
            tf.T5Config(
                vocab_size=vocab, d_model=32, d_kv=8, d_ff=64, num_layers=3, num_heads=4,
                relative_attention_num_buckets=8, relative_attention_max_distance=16, pad_token_id=pad,
                eos_token_id=tokenizer.eos_token_id, decoder_start_token_id=pad, feed_forward_proj="gated-gelu",
                attn_implementation="eager",
            )
        )  # fmt: skip
    if architecture == "qwen3":
        return tf.Qwen3Model(
            tf.Qwen3Config(
                vocab_size=vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=3, num_attention_heads=4,
                num_key_value_heads=2, head_dim=8, max_position_embeddings=256, use_sliding_window=True,
                sliding_window=3, max_window_layers=1,
                layer_types=["full_attention", "sliding_attention", "full_attention"],
                pad_token_id=pad, eos_token_id=tokenizer.eos_token_id, tie_word_embeddings=True,
                attn_implementation="eager",
            )
        )  # fmt: skip
    if architecture == "gemma3_text":
        return tf.Gemma3TextModel(
            tf.Gemma3TextConfig(
                vocab_size=vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=3, num_attention_heads=4,
                num_key_value_heads=1, head_dim=8, query_pre_attn_scalar=8, max_position_embeddings=256,
                sliding_window=6, layer_types=["sliding_attention", "full_attention", "sliding_attention"],
                use_bidirectional_attention=True, pad_token_id=pad, bos_token_id=tokenizer.bos_token_id,
                eos_token_id=tokenizer.eos_token_id, attn_implementation="eager",
            )
        )  # fmt: skip
    if architecture == "bart":  # an encoder-decoder: refused
        return tf.BartModel(
            tf.BartConfig(
                vocab_size=vocab, d_model=32, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4,
                decoder_attention_heads=4, encoder_ffn_dim=64, decoder_ffn_dim=64, max_position_embeddings=130,
                pad_token_id=pad,
            )
        )  # fmt: skip
    raise KeyError(architecture)


def build_tiny_model(
    folder: Path,
    architecture: str,
    minilm_dir: Path,
    *,
    pooling: str | None = None,
    normalize: bool = True,
    dense: tuple[int, ...] | None = None,
    dense_activation: str = "identity",
    similarity: str = "cosine",
    include_prompt: bool | None = None,
    prompts: dict[str, str] | None = None,
    seed: int = 0,
) -> Path:
    """Save a tiny sentence-transformers model of `architecture` under folder/st and return that path.

    None for pooling, dense, include_prompt and prompts takes the architecture's `SPECS` default.
    """
    import transformers
    from sentence_transformers import SentenceTransformer
    from st_modules import st_module, transformer_module

    dense_class, normalize_class, pooling_class = st_module("Dense"), st_module("Normalize"), st_module("Pooling")

    transformers.logging.set_verbosity_error()
    spec = SPECS.get(architecture, Spec())
    torch.manual_seed(seed)
    tokenizer = make_tokenizer(architecture, minilm_dir)
    try:
        hf = make_hf_model(architecture, tokenizer)
    except AttributeError as exc:  # an architecture newer than the installed transformers (make compat's oldest)
        if "transformers" not in str(exc):
            raise
        import pytest

        pytest.skip(f"transformers {transformers.__version__} has no {architecture} model ({exc})")
    from attribution.compat import check_architecture
    from attribution.errors import ModelError

    try:
        check_architecture(str(hf.config.model_type), architecture)
    except ModelError as exc:  # refused on this transformers release, as load_model would
        import pytest

        pytest.skip(str(exc))
    with torch.no_grad():
        for name, param in hf.named_parameters():
            if param.ndim >= 2 and "embed" not in name:
                param.mul_(spec.weight_scale)
    hf_dir = folder / "hf"
    hf.save_pretrained(hf_dir)
    tokenizer.save_pretrained(hf_dir)
    hidden = int(hf.config.hidden_size)
    transformer = transformer_module(str(hf_dir), 120, {"attn_implementation": "eager"})
    modules: list[torch.nn.Module] = [
        transformer,
        pooling_class(
            hidden,
            pooling_mode=pooling or spec.pooling,
            include_prompt=spec.include_prompt if include_prompt is None else include_prompt,
        ),
    ]
    size = hidden
    activation = torch.nn.Tanh() if dense_activation == "tanh" else torch.nn.Identity()
    for out in spec.dense if dense is None else dense:
        modules.append(dense_class(size, out, bias=dense_activation == "tanh", activation_function=activation))
        size = out
    if normalize:
        modules.append(normalize_class())
    chosen = spec.prompts if prompts is None else prompts
    st = SentenceTransformer(modules=modules, device="cpu", similarity_fn_name=similarity, prompts=dict(chosen) or None)
    out_dir = folder / "st"
    st.save(str(out_dir))
    return out_dir
