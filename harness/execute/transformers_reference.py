"""An independent reference for plain greedy decoding: transformers on the model's Hugging Face weights.

`matches_greedy` compares speculative decoding, prompt lookup, continuous batching and the rest with OpenVINO's own
plain greedy cell, so a wrong plain greedy path passes every check when nothing else compares with it. Here
transformers (PyTorch, f32), an implementation that shares no code with OpenVINO's, scores the plain greedy cell's
f32 validation outputs (harness/plan/validation.py); `checks.matches_transformers` judges what it finds.

- The same weights. The fp16 IR holds the Hugging Face weights rounded to float16, which OpenVINO widens to f32
  exactly, so every floating parameter and buffer (the rotary `inv_freq` too) is rounded to float16 and back
  before scoring. int8 / int4 IRs hold NNCF's compressed weights, not these: they are not scored.
- The same prompt ids: those the f32 pass's pipeline was fed (its tokenizer's encoding, which the check compares
  with the pipeline's own input count), so no tokenizer is part of the comparison.
- Teacher forcing: one forward pass over the prompt and OpenVINO's generated ids gives transformers' greedy choice
  at every generated position, given the same prefix. OpenVINO's output is transformers' own greedy decoding
  exactly when every choice is OpenVINO's token, and the first position where they differ is where the two greedy
  decodings part; unlike two free-running decodings, the positions after a near-tie are still checked.
- EOS as openvino-genai treats it: under `ignore_eos` nothing stops and EOS is a token like any other (never
  suppressed); otherwise OpenVINO's output, ending before `max_new_tokens`, must end where transformers' choice is
  a stop token (the eos ids of the model's generation_config.json and config.json). Before `min_new_tokens` stop
  tokens are out of the choice, on both sides.
- Near-ties. With the weights rounded as above, OpenVINO's f32 logits and transformers' differ by at most 2e-4 on
  SmolLM2-135M (30 layers, 96 positions x 49152 logits; 0.0095 with `inv_freq` left at f32, 0.047 with unrounded
  weights). Where transformers chooses another token, the position still passes when transformers' logit of its
  choice exceeds its logit of OpenVINO's token by at most `transformers_tolerance` (default 0.05 nats: it gives
  OpenVINO's token at least 95% of its own choice's probability). A wrong token is typically nats away.

Run as `python -m harness.execute.transformers_reference TASK_JSON` in the harness's own interpreter (the one that exported
the model, so it has torch and transformers), after the cell's measuring processes: no timed figure and no peak
memory sees it. It prints one JSON line, a TransformersReference."""

from __future__ import annotations

import itertools
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict

from harness.core.child_process import die_with_parent
from harness.core.errors import error_line
from harness.core.escaping import json_of
from harness.core.schema import CellSpec, CheckOutputs, TokenDisagreement, TransformersReference
from harness.plan import validation

REUSE_VERSION = 1  # bump when what the transformers process computes changes: kept results are then not reused
WEIGHTS = validation.TRANSFORMERS_WEIGHTS


class TransformersTask(BaseModel):
    """What the transformers process scores. Crosses a process boundary as JSON."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    source_dir: str
    prompts: dict[int, list[int]]  # prompt index -> the ids OpenVINO's pipeline was fed
    outputs: dict[int, list[int]]  # prompt index -> OpenVINO's f32 generated ids
    max_new_tokens: int
    min_new_tokens: int
    ignore_eos: bool


def not_scored(cell: CellSpec, source_dir: str | None, source_error: str | None) -> str | None:
    """Why a cell it applies to is not scored (the check is then not run), None when it is."""
    if cell.precision == "gguf":
        return (f"the GGUF file's own quantized weights, read by openvino-genai, are not the Hugging Face ones "
                f"transformers runs: judged on the {WEIGHTS} cell")
    if cell.precision != WEIGHTS:
        return (f"the {cell.precision} IR holds NNCF's compressed weights, not the Hugging Face ones transformers "
                f"runs: judged on the {WEIGHTS} cell")
    if source_dir is None:
        return source_error or ("the model source is an OpenVINO IR folder: no Hugging Face weights for "
                                "transformers to run")
    return None


def task_for(cell: CellSpec, source_dir: str, found: CheckOutputs) -> TransformersTask | str:
    """The task for the cell's f32 outputs, or why there is none."""
    if not found.f32_ids:
        return "no f32 validation outputs" + (f" ({found.f32_error})" if found.f32_error else "")
    missing = sorted(set(found.f32_ids) - set(found.f32_prompt_ids))
    if missing:
        return f"the f32 pass recorded no prompt ids for prompt(s) {missing}"
    g = cell.generation
    return TransformersTask(source_dir=source_dir, prompts={p: found.f32_prompt_ids[p] for p in found.f32_ids},
                            outputs=dict(found.f32_ids), max_new_tokens=g.max_new_tokens,
                            min_new_tokens=g.min_new_tokens, ignore_eos=g.ignore_eos)


def reuse_key(task: TransformersTask) -> dict[str, Any]:
    """Everything the transformers process's result depends on: the weights' content (not the folder's name), the
    prompt and output ids, the generation limits, the libraries and what this module computes."""
    from harness.core.host import package_versions
    from harness.models.cache import fingerprint_dir

    return {"version": REUSE_VERSION, "task": task.model_dump(exclude={"source_dir"}),
            "weights": fingerprint_dir(Path(task.source_dir)), "versions": package_versions(("torch", "transformers"))}


def reference(cell: CellSpec, source_dir: str | None, source_error: str | None, found: CheckOutputs,
              workdir: Path, cache_dir: Path | None = None) -> TransformersReference:
    """The cell's transformers reference, run in a fresh process of the harness's own interpreter; every
    reason it could not run is kept as its error, never raised. With `cache_dir`, a result for the same inputs
    (reuse_key) is read from there instead, and a new one kept: on an unchanged model and stack a rerun's
    outputs are the same ids, and scoring them again costs a torch import and a model load (~14 s on SmolLM2-135M)."""
    why = not_scored(cell, source_dir, source_error)
    if why is not None:
        return TransformersReference(error=why)
    assert source_dir is not None
    task = task_for(cell, source_dir, found)
    if isinstance(task, str):
        return TransformersReference(source=source_dir, error=task)
    kept = None
    if cache_dir is not None:
        from harness.core.digest import digest
        from harness.models.cache import read_json, write_json_whole

        kept = cache_dir / "transformers-reference" / f"{digest(reuse_key(task))}.json"
        earlier = read_json(kept)
        if isinstance(earlier, dict):
            try:
                done = TransformersReference.model_validate(earlier["result"])
                return done.model_copy(update={"source": source_dir, "seconds": None,
                                               "reused_from": str(earlier["computed_at"])})
            except (KeyError, ValueError):
                pass  # a damaged record: scored again and rewritten
    computed = _scored(task, workdir, cell.timeout_s)
    if kept is not None and computed.error is None:
        write_json_whole(kept, {"computed_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                                "result": computed.model_dump(mode="json")})
    return computed


def _scored(task: TransformersTask, workdir: Path, timeout_s: float) -> TransformersReference:
    """The transformers process's result for `task`."""
    source_dir = task.source_dir
    task_path = workdir / "transformers-task.json"
    task_path.write_text(json_of(task), encoding="utf-8")
    start = time.monotonic()
    try:
        proc = subprocess.run([sys.executable, "-m", "harness.execute.transformers_reference", str(task_path)],
                              capture_output=True, text=True, timeout=timeout_s, stdin=subprocess.DEVNULL,
                              preexec_fn=die_with_parent)
    except subprocess.TimeoutExpired:
        return TransformersReference(source=source_dir, error=f"transformers exceeded the cell's {timeout_s:g} s")
    seconds = round(time.monotonic() - start, 2)
    (workdir / "transformers.log").write_text(proc.stderr, encoding="utf-8")
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = " | ".join(proc.stderr.strip().splitlines()[-2:])
        return TransformersReference(source=source_dir, seconds=seconds,
                                     error=f"transformers exited with code {proc.returncode}: {tail[:400]}")
    found_ref = TransformersReference.model_validate_json(lines[-1])
    return found_ref.model_copy(update={"seconds": seconds})


# ---------------------------------------------------------------- in the transformers process


def disagreements(logits: np.ndarray, ids: list[int], stops: set[int], max_new_tokens: int, min_new_tokens: int,
                  ignore_eos: bool) -> list[TokenDisagreement]:
    """Where transformers' greedy choices part from OpenVINO's output `ids`. `logits[k]` are transformers' logits
    for generated position k given the prompt and ids[:k], for k = 0 .. len(ids) (the last row: the position after
    OpenVINO's last token)."""
    out: list[TokenDisagreement] = []

    def row(k: int) -> np.ndarray:
        r = logits[k].astype(np.float64)
        if k < min_new_tokens and stops:
            r = r.copy()
            r[list(stops)] = -np.inf
        return r

    def gap(r: np.ndarray, choice: int, mine: float) -> float | None:
        return float(r[choice] - mine) if np.isfinite(mine) else None

    n = min(len(ids), max_new_tokens)
    for k in range(n):
        r = row(k)
        choice = int(np.argmax(r))
        if choice != ids[k]:
            out.append(TokenDisagreement(position=k, openvino=ids[k], transformers=choice, gap=gap(r, choice, r[ids[k]])))
        if not ignore_eos and ids[k] in stops:
            if k + 1 < len(ids):  # went on past a stop token
                out.append(TokenDisagreement(position=k + 1, openvino=ids[k + 1], transformers=None, gap=None))
            return out
    if len(ids) > max_new_tokens:
        out.append(TokenDisagreement(position=max_new_tokens, openvino=ids[max_new_tokens], transformers=None, gap=None))
    elif len(ids) < max_new_tokens:  # OpenVINO stopped: right only where transformers would choose a stop token
        r = row(n)
        choice = int(np.argmax(r))
        if ignore_eos or not stops:
            out.append(TokenDisagreement(position=n, openvino=None, transformers=choice, gap=None))
        elif choice not in stops:
            best_stop = max(r[s] for s in stops)
            out.append(TokenDisagreement(position=n, openvino=None, transformers=choice, gap=gap(r, choice, best_stop)))
    return out


def _stop_tokens(model: Any) -> set[int]:
    found: set[int] = set()
    for eos in (getattr(model.generation_config, "eos_token_id", None), getattr(model.config, "eos_token_id", None)):
        if eos is not None:
            found.update([eos] if isinstance(eos, int) else list(eos))
    return found


def _load_fp16_rounded(source_dir: str) -> Any:
    """The model in f32 with every floating parameter and buffer rounded to float16, as the fp16 IR stores them:
    loaded at float16 (the checkpoint rounded as it is read) and widened, then the tensors the model class kept at
    f32 or computed itself (the rotary inv_freq) rounded too, unless float16 cannot hold them (e.g. a mask of
    float32's minimum: OpenVINO keeps such constants at f32 too). Loading at f32 and rounding every tensor after
    took 4x as long on SmolLM2-135M here."""
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(source_dir, dtype=torch.float16)
    kept = {name for name, t in itertools.chain(model.named_parameters(), model.named_buffers())
            if t.dtype == torch.float32}
    model = model.float().eval()
    with torch.no_grad():
        for name, t in itertools.chain(model.named_parameters(), model.named_buffers()):
            if name in kept:
                half = t.half()
                if bool(torch.isfinite(half).all()) or not bool(torch.isfinite(t).all()):
                    t.copy_(half.float())
    return model


def _logits(model: Any, prompt: list[int], ids: list[int]) -> np.ndarray:
    import torch

    x = torch.tensor([prompt + ids])
    keep = len(ids) + 1
    with torch.no_grad():
        try:
            out = model(x, logits_to_keep=keep).logits[0]
        except TypeError:  # a model class without logits_to_keep
            out = model(x).logits[0]
    return out[-keep:].float().numpy()


def score(task: TransformersTask) -> TransformersReference:
    """transformers' greedy choices along OpenVINO's outputs (teacher forcing), one forward pass per prompt."""
    model = _load_fp16_rounded(task.source_dir)
    stops = _stop_tokens(model)
    tokens, found = {}, {}
    for p in sorted(task.outputs):
        ids = task.outputs[p]
        tokens[p] = len(ids)
        found[p] = disagreements(_logits(model, task.prompts[p], ids), ids, stops, task.max_new_tokens,
                                 task.min_new_tokens, task.ignore_eos)
    return TransformersReference(source=task.source_dir, tokens=tokens,
                                 disagreements={p: d for p, d in found.items() if d})


def main(argv: list[str]) -> int:
    task = TransformersTask.model_validate_json(Path(argv[0]).read_text(encoding="utf-8"))
    try:
        found = score(task)
    except Exception as e:  # noqa: BLE001 - one line for the check's not-run reason
        found = TransformersReference(source=task.source_dir, error=error_line(e))
    print(json_of(found), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
