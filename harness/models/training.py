"""Training the built-in Llama models on the text their tokenizer was trained on (Python standard library
sources), so that they predict like trained causal LMs: peaked next-token distributions, code-like
continuations, int8 close to fp16, drafts that agree with their targets.

`tiny` and `small-base` are trained from scratch. `small` is grown from the trained `small-base` by
function-preserving widening and deepening (Net2Net: every hidden unit, head and MLP unit copied, new layers
that add nothing), because training 150M parameters from scratch on 2 CPU cores for minutes gives a model
worse than the 7M one (`grow_llama` can be followed by `train`; the built-in `small` is not: fine-tuning at
the speed this machine trains it made held-out loss worse). Step counts, not wall time, fix how long each trains, so a build is deterministic: same seed,
same corpus, same library versions and thread count give the same bytes.

Everything here imports torch lazily through its callers: only a build uses it."""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

# Threads used for training: a fixed number, because float reductions split across a different number of
# threads round differently and the build must give the same bytes on every run.
TRAIN_THREADS = 2
# How often training saves a checkpoint. A save of tiny's (and small-base's) state, weights and AdamW's two
# moments, 88 MB, took 0.11-0.17 s here: every 30 s costs under 0.6% and loses at most 30 s of training to a kill.
CHECKPOINT_EVERY_S = 30.0


@dataclass(frozen=True)
class TrainingSpec:
    """How a Llama model is trained: AdamW, linear warm-up then cosine decay to `min_lr_ratio`."""

    steps: int
    batch: int = 32
    seq_len: int = 64
    lr: float = 4e-3
    warmup_steps: int = 30
    min_lr_ratio: float = 0.05
    weight_decay: float = 0.01
    seed: int = 0


@dataclass(frozen=True)
class GrowthSpec:
    """Grow a trained model into a wider and deeper one whose function is the same up to `noise`, which makes
    the copies differ (so their rounding errors under compression do not repeat, and fine-tuning could move
    them apart)."""

    source: str  # name of the built-in model grown from
    noise: float = 0.01  # Gaussian noise, relative to each weight matrix's standard deviation
    seed: int = 0


@dataclass(frozen=True)
class Corpus:
    """Token ids of the corpus: the first part of every file to train on, the rest held out."""

    train: Any  # 1-D torch.LongTensor
    heldout: Any
    vocab_size: int


@dataclass(frozen=True)
class Quality:
    """How well a model predicts held-out text, beside a unigram model fitted on the training part."""

    heldout_loss: float  # mean cross-entropy per token, nats
    unigram_loss: float
    median_top1_probability: float
    heldout_tokens: int

    @property
    def perplexity(self) -> float:
        return math.exp(self.heldout_loss)

    def describe(self) -> str:
        return (f"held-out loss {self.heldout_loss:.3f} nats/token (perplexity {self.perplexity:.0f}) vs unigram "
                f"{self.unigram_loss:.3f} ({math.exp(self.unigram_loss):.0f}); median top-1 probability "
                f"{self.median_top1_probability:.3f} over {self.heldout_tokens} held-out tokens")


HELDOUT_FRACTION = 0.04  # the last 4% of every corpus file


def tokenize_corpus(texts: Sequence[str], tokenizer: Any, eos_id: int) -> Corpus:
    import torch

    train: list[int] = []
    held: list[int] = []
    for text in texts:
        ids = tokenizer(text, add_special_tokens=False)["input_ids"] + [eos_id]
        cut = int(len(ids) * (1 - HELDOUT_FRACTION))
        train += ids[:cut]
        held += ids[cut:]
    return Corpus(torch.tensor(train), torch.tensor(held), len(tokenizer))


def _lr(spec: TrainingSpec, step: int) -> float:
    warm = min(1.0, (step + 1) / max(1, spec.warmup_steps))
    cosine = 0.5 * (1 + math.cos(math.pi * step / spec.steps))
    return spec.lr * warm * (spec.min_lr_ratio + (1 - spec.min_lr_ratio) * cosine)


def train(model: Any, corpus: Corpus, spec: TrainingSpec, report: Callable[[int, float, float], None],
          checkpoint: Path | None = None, every_s: float = CHECKPOINT_EVERY_S,
          log: Callable[[str], None] | None = None) -> None:
    """Train `model` in place; `report(step, loss, elapsed_s)` after every step.

    With `checkpoint`, everything the remaining steps depend on (weights, AdamW's state, the batch sampler's
    random state, the step) is saved there every `every_s` seconds of training, and a later call with the same
    spec, corpus and model shape continues from it. A build killed near its end (a time limit, Ctrl-C, a crash)
    then loses at most `every_s` of training instead of all of it, and the resumed build ends with the same bytes
    as an uninterrupted one: the same steps draw the same batches and apply the same updates. The caller removes
    the file once the model is saved."""
    import torch

    gen = torch.Generator().manual_seed(spec.seed)
    opt = torch.optim.AdamW(model.parameters(), lr=spec.lr, betas=(0.9, 0.95), weight_decay=spec.weight_decay)
    data, t = corpus.train, spec.seq_len
    offsets = torch.arange(t + 1)
    identity = {"spec": asdict(spec), "train_tokens": len(data), "train_sum": int(data.sum())}
    first, done_s = 0, 0.0
    if checkpoint is not None:
        resumed = _resume(checkpoint, identity, model, opt, gen, log or (lambda _msg: None))
        if resumed is not None:
            first, done_s = resumed
    model.train()
    start = time.perf_counter() - done_s  # elapsed counts the checkpoint's training too: time-left estimates hold
    saved = time.perf_counter()
    for step in range(first, spec.steps):
        for group in opt.param_groups:
            group["lr"] = _lr(spec, step)
        starts = torch.randint(0, len(data) - t - 1, (spec.batch, 1), generator=gen)
        window = data[starts + offsets]
        logits = model(window[:, :-1]).logits
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), window[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        report(step + 1, float(loss.detach()), time.perf_counter() - start)
        if checkpoint is not None and step + 1 < spec.steps and time.perf_counter() - saved >= every_s:
            _save_checkpoint(checkpoint, {"identity": identity, "step": step + 1,
                                          "elapsed_s": time.perf_counter() - start, "model": model.state_dict(),
                                          "optimizer": opt.state_dict(), "generator": gen.get_state()})
            saved = time.perf_counter()
    model.eval()


def _save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Written beside and renamed into place, so a kill mid-save leaves the previous checkpoint whole."""
    import torch

    tmp = path.with_name(f"{path.name}.tmp{os.getpid()}")
    torch.save(state, tmp)
    os.replace(tmp, path)


def _resume(path: Path, identity: dict[str, Any], model: Any, opt: Any, gen: Any,
            log: Callable[[str], None]) -> tuple[int, float] | None:
    """The step and training seconds a checkpoint got to, its state loaded into model, optimizer and sampler;
    None (and the file removed) when there is none or it is of another training."""
    import torch

    if not path.is_file():
        return None
    try:
        state = torch.load(path, weights_only=True)
        if state.get("identity") != identity:
            raise ValueError("it is of another training (spec, corpus)")
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        gen.set_state(state["generator"])
    except Exception as e:  # noqa: BLE001 - an unusable checkpoint costs its steps, never the build
        log(f"training checkpoint {path} not used ({type(e).__name__}: {e}); training from step 0")
        path.unlink(missing_ok=True)
        return None
    log(f"resuming training from its checkpoint at step {state['step']}/{identity['spec']['steps']}")
    return int(state["step"]), float(state["elapsed_s"])


def evaluate(model: Any, corpus: Corpus, seq_len: int = 128) -> Quality:
    """Held-out loss and median top-1 probability, in windows of `seq_len` tokens."""
    import torch

    held = corpus.heldout
    counts = torch.bincount(corpus.train, minlength=corpus.vocab_size).double() + 1  # add-one smoothing
    unigram = float(-(counts / counts.sum()).log()[held].mean())
    losses, top1 = [], []
    with torch.no_grad():
        for s in range(0, len(held) - 1, seq_len):
            window = held[s:s + seq_len + 1]
            logits = model(window[None, :-1]).logits[0].float()
            losses.append(torch.nn.functional.cross_entropy(logits, window[1:], reduction="sum"))
            top1.append(logits.softmax(-1).amax(-1))
    n = sum(len(p) for p in top1)
    return Quality(heldout_loss=float(sum(losses)) / n, unigram_loss=unigram,
                   median_top1_probability=float(torch.cat(top1).median()), heldout_tokens=n)


def _tile_map(new: int, old: int) -> Any:
    """Which old unit each of `new` units copies (cyclically), and how many copies each old unit has."""
    import torch

    mapping = torch.arange(new) % old
    return mapping, torch.bincount(mapping, minlength=old).to(torch.float32)


def grow_llama(source: Any, target_config: Any, spec: GrowthSpec) -> Any:
    """A `LlamaForCausalLM` of `target_config` computing what `source` computes (Net2Net).

    Hidden units are tiled (RMSNorm sees the same mean square), weights reading the hidden state are divided
    by the copy count; query heads copy head j // (new heads / old heads) and key/value heads likewise, which
    keeps each query head with a copy of its own key/value head; MLP units are tiled with their output
    columns divided by their copy counts. Source layer i becomes layer i * (new layers / old layers); the
    layers between start with zero output projections, so they add nothing to the residual stream."""
    import torch
    from transformers import LlamaForCausalLM

    src_cfg = source.config
    h_old, h_new = src_cfg.hidden_size, target_config.hidden_size
    hd = h_old // src_cfg.num_attention_heads
    if h_new % h_old or target_config.num_hidden_layers % src_cfg.num_hidden_layers \
            or h_new // target_config.num_attention_heads != hd \
            or target_config.num_attention_heads % src_cfg.num_attention_heads \
            or target_config.num_key_value_heads % src_cfg.num_key_value_heads \
            or target_config.num_attention_heads // target_config.num_key_value_heads \
            % (src_cfg.num_attention_heads // src_cfg.num_key_value_heads) \
            or target_config.vocab_size != src_cfg.vocab_size:
        raise ValueError("target shape is not a whole-number widening of the source's")
    torch.manual_seed(spec.seed)
    target = LlamaForCausalLM(target_config).eval()
    r = h_new // h_old
    hid, _ = _tile_map(h_new, h_old)

    def head_rows(n_new: int, n_old: int) -> Any:
        per = n_new // n_old
        heads = torch.arange(n_new) // per
        return (heads[:, None] * hd + torch.arange(hd)[None, :]).reshape(-1)

    q_rows = head_rows(target_config.num_attention_heads, src_cfg.num_attention_heads)
    kv_rows = head_rows(target_config.num_key_value_heads, src_cfg.num_key_value_heads)
    q_copies = target_config.num_attention_heads // src_cfg.num_attention_heads
    mlp, mlp_copies = _tile_map(target_config.intermediate_size, src_cfg.intermediate_size)
    stride = target_config.num_hidden_layers // src_cfg.num_hidden_layers
    s, t = source.model, target.model
    with torch.no_grad():
        t.embed_tokens.weight.copy_(s.embed_tokens.weight[:, hid])
        t.norm.weight.copy_(s.norm.weight[hid])
        target.lm_head.weight.copy_(source.lm_head.weight[:, hid] / r)
        for i, new in enumerate(t.layers):
            if i % stride:
                new.self_attn.o_proj.weight.zero_()
                new.mlp.down_proj.weight.zero_()
                continue
            old = s.layers[i // stride]
            new.input_layernorm.weight.copy_(old.input_layernorm.weight[hid])
            new.post_attention_layernorm.weight.copy_(old.post_attention_layernorm.weight[hid])
            new.self_attn.q_proj.weight.copy_(old.self_attn.q_proj.weight[q_rows][:, hid] / r)
            new.self_attn.k_proj.weight.copy_(old.self_attn.k_proj.weight[kv_rows][:, hid] / r)
            new.self_attn.v_proj.weight.copy_(old.self_attn.v_proj.weight[kv_rows][:, hid] / r)
            new.self_attn.o_proj.weight.copy_(old.self_attn.o_proj.weight[hid][:, q_rows] / q_copies)
            new.mlp.gate_proj.weight.copy_(old.mlp.gate_proj.weight[mlp][:, hid] / r)
            new.mlp.up_proj.weight.copy_(old.mlp.up_proj.weight[mlp][:, hid] / r)
            new.mlp.down_proj.weight.copy_(old.mlp.down_proj.weight[hid][:, mlp] / mlp_copies[mlp])
        if spec.noise:
            for name, p in target.named_parameters():
                if p.dim() == 2 and "embed_tokens" not in name and float(p.std()) > 0:
                    p.add_(torch.randn_like(p) * float(p.std()) * spec.noise)
    return target


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def progress_reporter(name: str, spec: TrainingSpec, log: Callable[[str], None],
                      every: float = 0.05) -> Callable[[int, float, float], None]:
    """A `train` report that logs one progress line (percent, loss, time left) every `every` of the steps."""
    stride = max(1, int(spec.steps * every))

    def report(step: int, loss: float, elapsed: float) -> None:
        if step % stride and step != spec.steps:
            return
        left = elapsed / step * (spec.steps - step)
        log(f"training {name}: {100 * step // spec.steps}% (step {step}/{spec.steps}, loss {loss:.2f}, "
            f"{left:.0f} s left)")
    return report
