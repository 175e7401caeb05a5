"""Tiny randomly initialised sentence transformers of each supported architecture, built offline."""

from __future__ import annotations

from pathlib import Path

import torch

CORPUS = [
    "A man is playing a guitar on stage.",
    "Someone performs music with an instrument.",
    "The cat sleeps on the warm windowsill.",
    "Stocks fell sharply after the announcement.",
    "Don't forget the meeting at 10:30, it's important!",
    "Ünïcödé café naïve résumé 東京 😀",
]


def _bpe_tokenizer(folder: Path):  # type: ignore[no-untyped-def]
    """A byte-level BPE tokenizer with RoBERTa's <s> ... </s> template (Ġ-marked subwords)."""
    from tokenizers import ByteLevelBPETokenizer
    from tokenizers.processors import RobertaProcessing
    from transformers import PreTrainedTokenizerFast

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(CORPUS * 5, vocab_size=400, special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
    bpe.post_processor = RobertaProcessing(("</s>", bpe.token_to_id("</s>")), ("<s>", bpe.token_to_id("<s>")))
    specials = dict(
        bos_token="<s>",
        eos_token="</s>",
        cls_token="<s>",
        sep_token="</s>",
        pad_token="<pad>",
        unk_token="<unk>",
        mask_token="<mask>",
    )
    return PreTrainedTokenizerFast(tokenizer_object=bpe._tokenizer, **specials)


def _wordpiece_tokenizer(minilm_dir: Path, mpnet_specials: bool):  # type: ignore[no-untyped-def]
    """MiniLM's WordPiece vocabulary; with MPNet's <s> ... </s> specials when asked."""
    from transformers import BertTokenizerFast, PreTrainedTokenizerFast

    bert = BertTokenizerFast(vocab_file=str(minilm_dir / "vocab.txt"))
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


def build_tiny_model(
    folder: Path,
    architecture: str,
    minilm_dir: Path,
    *,
    pooling: str = "mean",
    normalize: bool = True,
    dense: bool = False,
    similarity: str = "cosine",
    seed: int = 0,
) -> Path:
    """Save a 2-layer, 32-dim model of `architecture` (bert, roberta, xlm-roberta, mpnet) to `folder`."""
    import transformers
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.base.modules.dense import Dense
    from sentence_transformers.base.modules.normalize import Normalize
    from sentence_transformers.base.modules.transformer import Transformer
    from sentence_transformers.sentence_transformer.modules.pooling import Pooling

    torch.manual_seed(seed)
    hf_dir = folder / "hf"
    if architecture in ("bert", "mpnet"):
        tokenizer = _wordpiece_tokenizer(minilm_dir, mpnet_specials=architecture == "mpnet")
    else:
        tokenizer = _bpe_tokenizer(folder / "bpe")
    common = dict(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=130,
        pad_token_id=tokenizer.pad_token_id,
    )
    config_cls = {
        "bert": transformers.BertConfig,
        "roberta": transformers.RobertaConfig,
        "xlm-roberta": transformers.XLMRobertaConfig,
        "mpnet": transformers.MPNetConfig,
    }[architecture]
    model_cls = {
        "bert": transformers.BertModel,
        "roberta": transformers.RobertaModel,
        "xlm-roberta": transformers.XLMRobertaModel,
        "mpnet": transformers.MPNetModel,
    }[architecture]
    hf = model_cls(config_cls(**common))
    hf.save_pretrained(hf_dir)
    tokenizer.save_pretrained(hf_dir)
    modules: list[torch.nn.Module] = [Transformer(str(hf_dir), max_seq_length=120), Pooling(32, pooling_mode=pooling)]
    if dense:
        modules.append(Dense(32, 16, activation_function=torch.nn.Tanh()))
    if normalize:
        modules.append(Normalize())
    st = SentenceTransformer(modules=modules, device="cpu", similarity_fn_name=similarity)
    out = folder / "st"
    st.save(str(out))
    return out
