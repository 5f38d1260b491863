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


def _small_training(steps: int = 8):
    from harness.models.training import Corpus, TrainingSpec

    gen = torch.Generator().manual_seed(5)
    corpus = Corpus(train=torch.randint(0, 300, (4000,), generator=gen), heldout=torch.randint(0, 300, (200,)),
                    vocab_size=300)
    return corpus, TrainingSpec(steps=steps, batch=4, seq_len=16, warmup_steps=2)


def _fresh_model():
    torch.manual_seed(0)
    return transformers.LlamaForCausalLM(_config(32, 1, 2, 1, 48))


class Killed(Exception):
    pass



def _kill_at(n: int):
    """A training progress callback that stops the build at step `n`, as a killed process would."""
    def progress(step, loss, elapsed):
        if step == n:
            raise Killed
    return progress

def test_training_killed_part_way_resumes_from_its_checkpoint_to_the_same_bytes(tmp_path):
    from harness.models.training import train

    corpus, spec = _small_training()
    straight = _fresh_model()
    train(straight, corpus, spec, lambda *a: None)

    checkpoint = tmp_path / "train.pt"

    with pytest.raises(Killed):
        train(_fresh_model(), corpus, spec, _kill_at(6), checkpoint=checkpoint, every_s=0)
    assert checkpoint.is_file()  # saved after every step here; the last one before the kill is step 5
    steps: list[int] = []
    logged: list[str] = []
    resumed = _fresh_model()
    train(resumed, corpus, spec, lambda step, *a: steps.append(step), checkpoint=checkpoint, every_s=0,
          log=logged.append)
    assert steps == [6, 7, 8] and any("resuming training from its checkpoint at step 5/8" in m for m in logged)
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b), name


def test_a_checkpoint_of_another_training_is_not_resumed(tmp_path):
    from harness.models.training import train

    corpus, spec = _small_training()
    checkpoint = tmp_path / "train.pt"

    with pytest.raises(Killed):
        train(_fresh_model(), corpus, spec, _kill_at(3), checkpoint=checkpoint, every_s=0)
    _, longer = _small_training(steps=9)
    steps: list[int] = []
    logged: list[str] = []
    train(_fresh_model(), corpus, longer, lambda step, *a: steps.append(step), checkpoint=checkpoint, log=logged.append)
    assert steps == list(range(1, 10)) and any("not used" in m for m in logged)
    assert not checkpoint.exists()  # the stale one is removed, and a 9-step run at every_s=30 saves none here


def test_a_built_entry_removes_its_training_checkpoint(tmp_path, monkeypatch):
    """The checkpoint lives beside the entry (a new build's start removes the old temporary folder, not it) and
    goes once the entry is published."""
    from harness.models import synthetic

    checkpoint = synthetic.train_checkpoint(synthetic.entry_dir("tiny", tmp_path))
    checkpoint.parent.mkdir(parents=True)
    checkpoint.write_bytes(b"state")
    seen: list[bool] = []

    def build(name, out, cache_dir, log):
        seen.append(checkpoint.is_file())  # still there while the model trains
        return synthetic.Built(num_parameters=1)

    monkeypatch.setattr(synthetic, "_build", build)
    entry = synthetic.build_synthetic("tiny", tmp_path)
    assert seen == [True] and entry.is_dir() and not checkpoint.exists()
