"""Training and growing the built-in Llama models (harness/models/training.py), on small random models."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from harness.models.training import GrowthSpec, grow_llama  # noqa: E402


def _config(hidden, layers, heads, kv, inter):
    return transformers.LlamaConfig(vocab_size=300, hidden_size=hidden, intermediate_size=inter,
                                    num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=kv,
                                    max_position_embeddings=128, tie_word_embeddings=False)


@pytest.mark.parametrize("target", [
    (128, 4, 4, 2, 200),   # everything doubled, MLP units copied unevenly (200 = 2 x 96 + 8)
    (256, 6, 8, 2, 384),   # 4x wider, 3x deeper, query groups of 4 from groups of 2
])
def test_growing_preserves_the_function(target):
    torch.manual_seed(0)
    source = transformers.LlamaForCausalLM(_config(64, 2, 2, 1, 96)).eval()
    with torch.no_grad():  # random init has tiny output projections; make every path matter
        for p in source.parameters():
            p.normal_(0, 0.2) if p.dim() == 2 else p.uniform_(0.5, 1.5)
    grown = grow_llama(source, _config(*target), GrowthSpec(source="x", noise=0.0))
    ids = torch.randint(0, 300, (2, 40))
    with torch.no_grad():
        a, b = source(ids).logits, grown(ids).logits
    assert torch.allclose(a, b, atol=1e-4 * float(a.abs().max())), float((a - b).abs().max())
    noisy = grow_llama(source, _config(*target), GrowthSpec(source="x", noise=0.01))
    with torch.no_grad():
        c = noisy(ids).logits
    assert not torch.equal(b, c)  # copies no longer identical ...
    assert (a.argmax(-1) == c.argmax(-1)).float().mean() > 0.9  # ... and the function nearly the same


def test_growing_to_a_shape_that_is_not_a_whole_widening_is_refused():
    source = transformers.LlamaForCausalLM(_config(64, 2, 2, 1, 96))
    with pytest.raises(ValueError, match="widening"):
        grow_llama(source, _config(96, 2, 3, 1, 96), GrowthSpec(source="x"))
    with pytest.raises(ValueError, match="widening"):
        grow_llama(source, _config(128, 3, 4, 2, 192), GrowthSpec(source="x"))
