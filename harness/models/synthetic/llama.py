"""Llama causal LMs: trained on the corpus (`training.py`), grown from a smaller built-in model, or with
seeded random weights."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.models.synthetic.base import Built, Family, Job
from harness.models.synthetic.tokenizer import (
    BOS_ID,
    EOS_ID,
    PAD_ID,
    TOKENIZER,
    build_tokenizer,
    corpus_paths,
)
from harness.models.training import TRAIN_THREADS, GrowthSpec, TrainingSpec


@dataclass(frozen=True)
class LlamaSpec:
    """A Llama causal LM: trained with `training`, grown from another built-in model with `grown_from`
    (then trained with `training` if set), or with seeded random weights when neither is set."""

    hidden_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    intermediate_size: int
    vocab_size: int = 8192
    max_position_embeddings: int = 2048
    seed: int = 0
    # Output projections (o_proj, down_proj) of every layer after the first are scaled by this, so the
    # residual stream is shaped mostly by the first layer, as in trained LMs whose early layers already
    # predict much of the next token. Without it a first-layer draft agrees with its random target on
    # ~1% of tokens; at 0.1 on ~40%, and outputs are more varied.
    deep_layer_scale: float = 0.1  # random weights only
    training: TrainingSpec | None = None
    grown_from: GrowthSpec | None = None


def llama_config(spec: LlamaSpec):
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=spec.vocab_size, hidden_size=spec.hidden_size, intermediate_size=spec.intermediate_size,
        num_hidden_layers=spec.num_layers, num_attention_heads=spec.num_heads,
        num_key_value_heads=spec.num_kv_heads, max_position_embeddings=spec.max_position_embeddings,
        bos_token_id=BOS_ID, eos_token_id=EOS_ID, pad_token_id=PAD_ID, tie_word_embeddings=False,
    )


def save(model, out: Path) -> int:
    from transformers import GenerationConfig

    model.generation_config = GenerationConfig(bos_token_id=BOS_ID, eos_token_id=EOS_ID, pad_token_id=PAD_ID)
    model.save_pretrained(out)
    return sum(p.numel() for p in model.parameters())


def tokenized_corpus(tok: Any):
    from harness.models.training import tokenize_corpus

    return tokenize_corpus([p.read_text(encoding="utf-8") for p in corpus_paths(TOKENIZER)], tok, EOS_ID)


def build(spec: LlamaSpec, job: Job) -> Built:
    import torch
    from transformers import LlamaForCausalLM

    from harness.models import training

    name, out, log = job.name, job.out, job.log
    tok = build_tokenizer(TOKENIZER)
    tok.save_pretrained(out)
    if spec.training is None and spec.grown_from is None:
        torch.manual_seed(spec.seed)
        model = LlamaForCausalLM(llama_config(spec)).eval()
        with torch.no_grad():
            for layer in model.model.layers[1:]:
                layer.self_attn.o_proj.weight.mul_(spec.deep_layer_scale)
                layer.mlp.down_proj.weight.mul_(spec.deep_layer_scale)
        return Built(save(model, out))
    with training.torch_threads(TRAIN_THREADS):
        corpus = tokenized_corpus(tok)
        if spec.grown_from is not None:
            grow_source = job.deps.get("grown_from")
            assert grow_source is not None
            log(f"growing {name} from {spec.grown_from.source} ...")
            source = LlamaForCausalLM.from_pretrained(grow_source, dtype=torch.float32).eval()
            model = training.grow_llama(source, llama_config(spec), spec.grown_from)
        else:
            torch.manual_seed(spec.seed)
            model = LlamaForCausalLM(llama_config(spec))
        if spec.training is not None:
            training.train(model, corpus, spec.training, training.progress_reporter(name, spec.training, log),
                           checkpoint=job.checkpoint, log=log)
        log(f"evaluating {name} on held-out text ...")
        quality = training.evaluate(model, corpus)
    return Built(save(model, out), quality)


def _depends_on(spec: LlamaSpec) -> dict[str, str]:
    return {"grown_from": spec.grown_from.source} if spec.grown_from else {}


FAMILY = Family(LlamaSpec, build, depends_on=_depends_on)
