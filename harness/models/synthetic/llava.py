"""LLaVA vision-language models: a CLIP vision tower and a projector with seeded random weights in front of a
Llama text model (random, or a trained built-in Llama's)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.models.synthetic.base import Built, Family, Job
from harness.models.synthetic.llama import LlamaSpec, llama_config, save
from harness.models.synthetic.tokenizer import TOKENIZER, build_tokenizer


@dataclass(frozen=True)
class LlavaSpec:
    """A LLaVA vision-language model: a CLIP vision tower, a projector and a Llama `text` model, all with
    seeded random weights, plus an image processor for `image_size`-pixel square images."""

    text: LlamaSpec
    vision_hidden_size: int = 128
    vision_layers: int = 2
    vision_heads: int = 2
    vision_intermediate_size: int = 256
    image_size: int = 64
    patch_size: int = 16
    seed: int = 0
    text_from: str | None = None  # a trained built-in Llama of `text`'s shape whose weights the text model takes


IMAGE_TOKEN = "<image>"
LLAVA_CHAT_TEMPLATE = (
    "{% for message in messages %}{{ message['role'] | upper }}: {{ message['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}ASSISTANT:{% endif %}"
)


def build(spec: LlavaSpec, job: Job) -> Built:
    import torch
    from transformers import (
        CLIPImageProcessor,
        CLIPVisionConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
    )

    tok = build_tokenizer(TOKENIZER)
    tok.add_special_tokens({"additional_special_tokens": [IMAGE_TOKEN]})
    tok.chat_template = LLAVA_CHAT_TEMPLATE
    text = llama_config(spec.text)
    text.vocab_size = len(tok)
    vision = CLIPVisionConfig(hidden_size=spec.vision_hidden_size, intermediate_size=spec.vision_intermediate_size,
                              num_hidden_layers=spec.vision_layers, num_attention_heads=spec.vision_heads,
                              image_size=spec.image_size, patch_size=spec.patch_size,
                              projection_dim=spec.vision_hidden_size)
    n_patches = (spec.image_size // spec.patch_size) ** 2
    config = LlavaConfig(vision_config=vision, text_config=text, image_token_index=tok.convert_tokens_to_ids(IMAGE_TOKEN),
                         image_seq_length=n_patches, vision_feature_select_strategy="default", vision_feature_layer=-2)
    torch.manual_seed(spec.seed)
    model = LlavaForConditionalGeneration(config).eval()
    text_source = job.deps.get("text_from")
    if text_source is not None:
        _load_text_model(model, text_source)
    size = spec.image_size
    processor = LlavaProcessor(
        image_processor=CLIPImageProcessor(size={"shortest_edge": size}, crop_size={"height": size, "width": size}),
        tokenizer=tok, patch_size=spec.patch_size, vision_feature_select_strategy="default",
        chat_template=LLAVA_CHAT_TEMPLATE, num_additional_image_tokens=1)
    processor.save_pretrained(job.out)
    # openvino-genai reads the image processor from preprocessor_config.json, which transformers 5 folds
    # into processor_config.json unless asked for separately
    processor.image_processor.save_pretrained(job.out)
    return Built(save(model, job.out))


def _load_text_model(model: Any, source: Path) -> None:
    """Put a trained Llama's weights into a LLaVA text model whose vocabulary adds the image token (its rows
    take the mean embedding and output row, so that it is neither likely nor impossible)."""
    import torch
    from transformers import LlamaForCausalLM

    trained = LlamaForCausalLM.from_pretrained(source, dtype=torch.float32)
    state = trained.model.state_dict()
    n = state["embed_tokens.weight"].shape[0]
    with torch.no_grad():
        for src, dst in ((state["embed_tokens.weight"], model.model.language_model.embed_tokens.weight),
                         (trained.lm_head.weight, model.lm_head.weight)):
            dst[:n].copy_(src)
            dst[n:].copy_(src.mean(0, keepdim=True).expand_as(dst[n:]))
        state["embed_tokens.weight"] = model.model.language_model.embed_tokens.weight.detach().clone()
        model.model.language_model.load_state_dict(state, strict=True)


def _depends_on(spec: LlavaSpec) -> dict[str, str]:
    return {"text_from": spec.text_from} if spec.text_from else {}


FAMILY = Family(LlavaSpec, build, depends_on=_depends_on)
