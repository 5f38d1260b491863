"""The built-in models by name: what `synthetic:NAME` sources build."""

from __future__ import annotations

from typing import Any

from harness.models.synthetic.alias import AliasSpec
from harness.models.synthetic.bert import BertSpec
from harness.models.synthetic.diffusion import DiffusionSpec
from harness.models.synthetic.draft import DraftSpec
from harness.models.synthetic.llama import LlamaSpec
from harness.models.synthetic.llava import LlavaSpec
from harness.models.synthetic.registry import SyntheticSpec
from harness.models.synthetic.speecht5 import SpeechT5Spec
from harness.models.synthetic.video import VideoSpec
from harness.models.synthetic.whisper import WhisperSpec
from harness.models.training import GrowthSpec, TrainingSpec


def _small_shape(intermediate_size: int = 2688, **fields: Any) -> LlamaSpec:
    """`small`'s shape (hidden 1024, 12 layers, 16 heads, 4 KV heads, a 4096-token context), MLP width given."""
    return LlamaSpec(hidden_size=1024, num_layers=12, num_heads=16, num_kv_heads=4, intermediate_size=intermediate_size,
                     max_position_embeddings=4096, **fields)


SYNTHETIC_MODELS: dict[str, SyntheticSpec] = {
    # ~150 s of training on 2 cores (~700k tokens, 1.3 passes over the corpus)
    "tiny": LlamaSpec(hidden_size=256, num_layers=4, num_heads=4, num_kv_heads=2, intermediate_size=768,
                      training=TrainingSpec(steps=340)),
    # tiny's shape trained three times as long (~450 s, ~4 passes over the corpus) with another seed: what
    # `small` is grown from, and small's draft
    "small-base": LlamaSpec(hidden_size=256, num_layers=4, num_heads=4, num_kv_heads=2, intermediate_size=768,
                            max_position_embeddings=4096, training=TrainingSpec(steps=1000, seed=1)),
    "small": _small_shape(grown_from=GrowthSpec(source="small-base", noise=0.1)),
    "tiny-draft": DraftSpec(target="tiny", num_layers=1),
    "tiny-vlm": LlavaSpec(text=LlamaSpec(hidden_size=256, num_layers=4, num_heads=4, num_kv_heads=2,
                                          intermediate_size=768), text_from="tiny"),
    "small-vlm": LlavaSpec(text=_small_shape(),
                           vision_hidden_size=384, vision_layers=6, vision_heads=6, vision_intermediate_size=1536,
                           image_size=224, patch_size=16, text_from="small"),
    "tiny-whisper": WhisperSpec(),
    "tiny-sd": DiffusionSpec(),
    "tiny-ltx": VideoSpec(),
    "small-sd": DiffusionSpec(text_hidden_size=512, text_layers=4, unet_channels=(128, 256, 512), image_size=256),
    "small-whisper": WhisperSpec(d_model=384, layers=4, heads=6, ffn_dim=1536),
    "tiny-tts": SpeechT5Spec(),
    # Channel sizes are multiples of 128 so that int4 group compression applies.
    "tiny-embed": BertSpec(hidden_size=256, num_layers=2, num_heads=4, intermediate_size=512),
    "tiny-rerank": BertSpec(hidden_size=256, num_layers=2, num_heads=4, intermediate_size=512, head="score",
                            arch="roberta"),
    "small-embed": BertSpec(hidden_size=768, num_layers=6, num_heads=12, intermediate_size=3072),
    "small-rerank": BertSpec(hidden_size=768, num_layers=6, num_heads=12, intermediate_size=3072, head="score",
                             arch="roberta"),
    "small-draft": AliasSpec(of="small-base"),
    # `small` with a wider MLP: each generated token reads ~1% / ~2% / ~4% / ~5.1% / ~10.2% more weight bytes
    # (and does as much more matrix work); candidates with a physical slowdown for the A/B detection benchmarks.
    # Their weights are random; `small-random` is `small`'s shape with random weights, their baseline: on an Intel
    # Xeon host the random-weight models decoded ~13% slower than the trained `small` at the same shape.
    "small-random": _small_shape(),
    "small-wide1": _small_shape(intermediate_size=2728),
    "small-wide2": _small_shape(intermediate_size=2768),
    "small-wide4": _small_shape(intermediate_size=2840),
    "small-wide5": _small_shape(intermediate_size=2880),
    "small-wide10": _small_shape(intermediate_size=3072),
}
