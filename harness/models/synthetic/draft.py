"""Draft models for speculative decoding, cut from a built-in Llama target."""

from __future__ import annotations

import shutil
from dataclasses import dataclass

from harness.models.synthetic.base import Built, Family, Job, built_quality
from harness.models.synthetic.llama import save, tokenized_corpus
from harness.models.synthetic.tokenizer import TOKENIZER, build_tokenizer
from harness.models.training import TRAIN_THREADS


@dataclass(frozen=True)
class DraftSpec:
    """A draft model made of the target's first `num_layers` layers plus its embeddings, norm and head."""

    target: str
    num_layers: int


def build(spec: DraftSpec, job: Job) -> Built:
    from safetensors.torch import load_file
    from transformers import LlamaConfig, LlamaForCausalLM

    from harness.models import training

    target_dir, out = job.deps["target"], job.out
    config = LlamaConfig.from_pretrained(target_dir)
    config.num_hidden_layers = spec.num_layers
    weights: dict = {}
    for f in sorted(target_dir.glob("*.safetensors")):
        weights.update(load_file(f))
    kept = {k: v for k, v in weights.items() if not k.startswith("model.layers.")
            or int(k.split(".")[2]) < spec.num_layers}
    model = LlamaForCausalLM(config).eval()
    model.load_state_dict(kept, strict=True)
    for f in target_dir.iterdir():
        if f.name.startswith(("tokenizer", "special_tokens", "chat_template")):
            shutil.copy2(f, out / f.name)
    quality = None
    if built_quality(target_dir) is not None:  # a trained target: say how well its first layers predict
        with training.torch_threads(TRAIN_THREADS):
            quality = training.evaluate(model, tokenized_corpus(build_tokenizer(TOKENIZER)))
    return Built(save(model, out), quality)


FAMILY = Family(DraftSpec, build, depends_on=lambda spec: {"target": spec.target})
