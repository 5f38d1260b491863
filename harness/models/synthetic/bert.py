"""BERT and RoBERTa encoders with seeded random weights: text embeddings and rerank cross-encoders."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from harness.models.synthetic.base import Built, Family, Job
from harness.models.synthetic.tokenizer import (
    BOS_ID,
    EOS_ID,
    PAD_ID,
    TOKENIZER,
    TokenizerSpec,
    build_tokenizer,
    corpus_paths,
)


@dataclass(frozen=True)
class BertSpec:
    """A BERT encoder with seeded random weights: `head` "none" is a text-embedding model (BertModel,
    exported for feature extraction), "score" a one-logit cross-encoder for rerank
    (BertForSequenceClassification, exported for text classification)."""

    hidden_size: int
    num_layers: int
    num_heads: int
    intermediate_size: int
    head: str = "none"
    # "bert": WordPiece tokenizer, token type ids; "roberta": byte-level BPE, no token type ids (the
    # shape of XLM-RoBERTa rerankers such as bge-reranker, and what TextRerankPipeline's pair tokenizer feeds)
    arch: str = "bert"
    vocab_size: int = 8192
    max_position_embeddings: int = 514
    seed: int = 0
    # cross-encoders: the output layer is set so that logits over calibration pairs have mean 0 and this
    # sd; random init otherwise gives all-equal or all-saturated scores (ties after sigmoid, no ranking)
    score_logit_sd: float = 2.0


WORDPIECE_SPECIAL = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")  # ids 0..4


def build_wordpiece_tokenizer(spec: TokenizerSpec):
    """Lower-casing WordPiece trained on stdlib sources, BERT-style ([CLS] a [SEP] b [SEP])."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    pad, unk, cls, sep, mask = WORDPIECE_SPECIAL
    tok = Tokenizer(models.WordPiece(unk_token=unk))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    trainer = trainers.WordPieceTrainer(vocab_size=spec.vocab_size, special_tokens=list(WORDPIECE_SPECIAL),
                                        show_progress=False)
    tok.train_from_iterator([p.read_text(encoding="utf-8") for p in corpus_paths(spec)], trainer=trainer)
    tok.post_processor = processors.TemplateProcessing(
        single=f"{cls} $A {sep}", pair=f"{cls} $A {sep} $B:1 {sep}:1",
        special_tokens=[(cls, WORDPIECE_SPECIAL.index(cls)), (sep, WORDPIECE_SPECIAL.index(sep))])
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token=pad, unk_token=unk, cls_token=cls,
                                   sep_token=sep, mask_token=mask, model_max_length=512)


CALIBRATION_QUERIES = ("how to open a file", "sort a list of numbers", "what is a thread lock")
CALIBRATION_DOCUMENTS = ("def open(path, mode='r'): return io.open(path, mode)", "the cat sat on the mat",
                         "sorted(values, key=abs, reverse=True)", "import threading; lock = threading.Lock()",
                         "class Queue: a FIFO container", "raise ValueError('bad input')")


def build(spec: BertSpec, job: Job) -> Built:
    import torch
    from transformers import (
        BertConfig,
        BertForSequenceClassification,
        BertModel,
        RobertaConfig,
        RobertaForSequenceClassification,
        RobertaModel,
    )

    tok = build_wordpiece_tokenizer(TOKENIZER) if spec.arch == "bert" else build_tokenizer(TOKENIZER, roberta=True)
    tok.save_pretrained(job.out)
    torch.manual_seed(spec.seed)
    common = dict(vocab_size=spec.vocab_size, hidden_size=spec.hidden_size, num_hidden_layers=spec.num_layers,
                  num_attention_heads=spec.num_heads, intermediate_size=spec.intermediate_size,
                  max_position_embeddings=spec.max_position_embeddings, num_labels=1)
    if spec.arch == "roberta":
        config = RobertaConfig(**common, pad_token_id=PAD_ID, bos_token_id=BOS_ID, eos_token_id=EOS_ID,
                               type_vocab_size=1)
        classes = (RobertaForSequenceClassification, RobertaModel)
    else:
        config = BertConfig(**common, pad_token_id=0)
        classes = (BertForSequenceClassification, BertModel)
    model = (classes[0](config) if spec.head == "score" else classes[1](config)).eval()
    if spec.head == "score":
        _calibrate_score_head(model, tok, spec.score_logit_sd, token_types=spec.arch == "bert")
    model.save_pretrained(job.out)
    return Built(sum(p.numel() for p in model.parameters()))


def _calibrate_score_head(model: Any, tok: Any, sd: float, token_types: bool) -> None:
    """Rescale the cross-encoder's last linear layer so calibration-pair logits have mean 0 and `sd`."""
    import torch

    pairs = [(q, d) for q in CALIBRATION_QUERIES for d in CALIBRATION_DOCUMENTS]
    enc = tok([q for q, _ in pairs], [d for _, d in pairs], padding=True, return_tensors="pt")
    if not token_types:  # RoBERTa has one token type; its pair tokenizer feeds none
        enc.pop("token_type_ids", None)
    last = model.classifier.out_proj if hasattr(model.classifier, "out_proj") else model.classifier
    with torch.no_grad():
        logits = model(**enc).logits[:, 0].double()
        scale = sd / float(logits.std().clamp_min(1e-12))
        last.weight.mul_(scale)
        last.bias.mul_(scale).sub_(float(logits.mean()) * scale)


FAMILY = Family(BertSpec, build)
