"""Hugging Face directory -> OpenVINO IR with optimum-cli (NNCF weight compression)."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness.core.errors import ModelPreparationError, error_line
from harness.core.input_files import MAX_MODEL_CONFIG_BYTES, load_json
from harness.core.schema import CompressionSpec

LOG_NAME = "export.log"
# optimum-cli's export of a 7B model takes under an hour on a laptop; one that has not ended in 4 hours is hung
# (a tracing deadlock, a swap storm), and a suite must not wait on it without end
EXPORT_TIMEOUT_S = 4 * 3600
TOKENIZER_FILES = ("openvino_tokenizer.xml", "openvino_detokenizer.xml")
# Files openvino-genai reads next to the IR that optimum-cli does not always copy (without torchvision it
# cannot load an image processor, and skips preprocessor_config.json).
AUX_FILES = ("preprocessor_config.json", "processor_config.json")
VOCODER_DIR = "vocoder"  # a text-to-speech model's vocoder (harness.models.synthetic.speecht5 builds it there)
_ERROR_LINE = re.compile(r"^[\w.]*(Error|Exception)\b.*:")


# Hugging Face architecture suffix -> optimum export task (the first match wins).
TASKS = (
    ("ForCausalLM", "text-generation-with-past"),
    ("ForSequenceClassification", "text-classification"),
    ("LlavaForConditionalGeneration", "image-text-to-text"),
    ("WhisperForConditionalGeneration", "automatic-speech-recognition-with-past"),
    ("SpeechT5ForTextToSpeech", "text-to-audio"),
    ("Model", "feature-extraction"),
)


# diffusers pipeline class (model_index.json's _class_name) -> optimum export task; other pipelines are text-to-image
PIPELINE_TASKS = {"LTXPipeline": "text-to-video"}
DIFFUSION_TASKS = ("text-to-image", "text-to-video")


def export_task(src: Path) -> str:
    """The optimum task for the model in `src`: for a diffusers pipeline (model_index.json) text-to-video for
    LTX-Video, else text-to-image; else from config.json's architectures (text generation when unknown)."""
    index, config = src / "model_index.json", src / "config.json"
    if index.is_file():
        pipeline = load_json(index, "model file", MAX_MODEL_CONFIG_BYTES).get("_class_name")
        return PIPELINE_TASKS.get(pipeline if isinstance(pipeline, str) else "", "text-to-image")
    archs = load_json(config, "model file", MAX_MODEL_CONFIG_BYTES).get("architectures") if config.is_file() else None
    for arch in archs if isinstance(archs, list) else []:
        for suffix, task in TASKS:
            if isinstance(arch, str) and arch.endswith(suffix):
                return task
    return "text-generation-with-past"


def export_command(src: Path, out: Path, precision: str, compression: CompressionSpec) -> list[str]:
    task = export_task(src)
    cmd = [sys.executable, "-m", "optimum.commands.optimum_cli", "export", "openvino", "-m", str(src),
           "--task", task, "--weight-format", precision]
    if task == "text-to-audio":
        # SpeechT5 speaks through a separate vocoder model, which optimum exports alongside when named; a
        # downloaded SpeechT5 has none in its folder (the vocoder is its own repository)
        if not (src / VOCODER_DIR / "config.json").is_file():
            raise ModelPreparationError(
                f"'{src}' is a SpeechT5 text-to-speech model without its vocoder: put a SpeechT5HifiGan model "
                f"(e.g. microsoft/speecht5_hifigan) in {src / VOCODER_DIR}")
        cmd += ["--model-kwargs", json.dumps({"vocoder": str(src / VOCODER_DIR)})]
    if precision == "int4":
        if compression.dataset:
            # optimum-cli calibrates only on datasets it downloads; the harness calibrates in process (text models)
            raise ModelPreparationError(f"data-aware int4 compression (dataset: true) is for text models, compressed "
                                        f"in process; optimum-cli's export of '{src}' ({task}) would download its data")
        cmd += ["--group-size", str(compression.group_size), "--ratio", str(compression.ratio)]
        if compression.sym:
            cmd.append("--sym")
    return cmd + [str(out)]


def export_ir(src: Path, out: Path, precision: str, compression: CompressionSpec) -> None:
    """Export `src` into the existing directory `out`; its output goes to out/export.log."""
    # The source is always local by now: keep the CLI from asking the Hub about it.
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    log_path = out / LOG_NAME
    with log_path.open("w") as f:
        proc = subprocess.Popen(export_command(src, out, precision, compression), stdout=f, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, env=env, start_new_session=True)
        try:
            rc = proc.wait(timeout=EXPORT_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # its whole group: optimum-cli may have started workers
            proc.wait()
            raise ModelPreparationError(f"optimum-cli export of '{src}' to {precision} did not end within "
                                        f"{EXPORT_TIMEOUT_S} s; stopped") from None
    if rc != 0:
        raise ModelPreparationError(
            f"optimum-cli export of '{src}' to {precision} failed (exit {rc}): {last_error(log_path.read_text())}")
    task = export_task(src)
    if task in DIFFUSION_TASKS:
        # a diffusion pipeline's tokenizer is converted by optimum-cli into its tokenizer/ folder
        if not (out / "tokenizer" / TOKENIZER_FILES[0]).is_file():
            raise ModelPreparationError(f"optimum-cli export of '{src}' made no tokenizer/{TOKENIZER_FILES[0]}")
    else:
        ensure_tokenizers(src, out, pairs=task == "text-classification")
    for name in AUX_FILES:
        if (src / name).is_file() and not (out / name).exists():
            shutil.copy2(src / name, out / name)


# these tasks' IR is one model file: its int8 / int4 weights are compressed from the fp16 IR by NNCF in process,
# with optimum-cli's own options, instead of tracing the PyTorch model again (~40 s for 135M parameters); the
# logits of SmolLM2-135M's int8 and int4 IRs are as close to fp16's either way (KL 0.0047 / 0.353 nats per token
# against 0.0048 / 0.351 from optimum-cli, 400 tokens at f32)
COMPRESSIBLE_TASKS = ("text-generation-with-past", "feature-extraction", "text-classification")
MODEL_XML = "openvino_model.xml"


def compress_ir(fp16_dir: Path, out: Path, precision: str, compression: CompressionSpec,
                calibration_text: Callable[[], str] | None = None) -> None:
    """The fp16 IR in `fp16_dir` with its weights compressed to `precision` by NNCF, written into the existing
    directory `out` beside copies of its other files (tokenizers, configs); NNCF's own output goes to out/export.log.
    Data-aware settings calibrate on `calibration_text`."""
    import contextlib

    for f in fp16_dir.iterdir():
        if f.is_file() and f.name not in (MODEL_XML, MODEL_XML.replace(".xml", ".bin")):
            shutil.copy2(f, out / f.name)
    log_path = out / LOG_NAME
    try:
        with log_path.open("w") as log, contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
            import nncf
            import openvino as ov

            model = ov.Core().read_model(fp16_dir / MODEL_XML)
            if precision == "int8":
                options: dict = {"mode": nncf.CompressWeightsMode.INT8_ASYM}
            else:
                options = {"mode": nncf.CompressWeightsMode.INT4_SYM if compression.sym else nncf.CompressWeightsMode.INT4_ASYM,
                           "group_size": compression.group_size, "ratio": compression.ratio}
                if compression.dataset:
                    if calibration_text is None:
                        raise ModelPreparationError("data-aware compression needs a calibration text")
                    options.update(dataset=nncf.Dataset(calibration_inputs(fp16_dir, model, calibration_text())),
                                   awq=compression.awq,
                                   scale_estimation=compression.scale_estimation)
            model = nncf.compress_weights(model, **options)
            ov.save_model(model, out / MODEL_XML, compress_to_fp16=False)
    except Exception as e:  # noqa: BLE001 - NNCF's refusal (e.g. a group size), one line
        raise ModelPreparationError(f"NNCF weight compression of '{fp16_dir}' to {precision} failed: "
                                    f"{error_line(e)}") from None


# data-aware int4: this many windows of this many tokens of the calibration text
CALIBRATION_SAMPLES, CALIBRATION_TOKENS = 32, 128


def calibration_inputs(ir_dir: Path, model: Any, text: str) -> list[dict[str, Any]]:
    """The inputs NNCF calibrates a text model on: windows of the calibration text encoded by the IR's own
    tokenizer, as one prefill each."""
    import numpy as np
    import openvino_genai as ov_genai

    ids = ov_genai.Tokenizer(str(ir_dir)).encode(text, add_special_tokens=False).input_ids.data[0]
    n = CALIBRATION_TOKENS
    if len(ids) < n:
        raise ModelPreparationError(f"the calibration text encodes to {len(ids)} tokens, fewer than one window of {n}")
    names = {i.get_any_name() for i in model.inputs}
    out = []
    for w in range(min(CALIBRATION_SAMPLES, len(ids) // n)):
        window = np.asarray(ids[w * n:(w + 1) * n], dtype=np.int64)[None, :]
        item = {"input_ids": window, "attention_mask": np.ones_like(window),
                "position_ids": np.arange(n, dtype=np.int64)[None, :], "beam_idx": np.zeros(1, dtype=np.int32)}
        out.append({k: v for k, v in item.items() if k in names})
    return out


def last_error(text: str) -> str:
    """The line of a log most likely to explain a failure."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return next((line for line in reversed(lines) if _ERROR_LINE.match(line)), lines[-1] if lines else "no output")


def ensure_tokenizers(src: Path, out: Path, pairs: bool = False) -> None:
    """Convert the tokenizer pair into `out` unless optimum-cli already did. A cross-encoder (`pairs`)
    gets a two-input tokenizer (query, document), which optimum-cli does not make."""
    if all((out / f).is_file() for f in TOKENIZER_FILES) and not pairs:
        return
    try:
        import openvino as ov
        from openvino_tokenizers import convert_tokenizer
        from transformers import AutoTokenizer

        tok, detok = convert_tokenizer(AutoTokenizer.from_pretrained(src), with_detokenizer=True,
                                       number_of_inputs=2 if pairs else 1)
        for model, name in zip((tok, detok), TOKENIZER_FILES, strict=True):
            ov.save_model(model, out / name)
    except Exception as e:  # noqa: BLE001 - any converter failure is one preparation error
        reason = next((line for line in str(e).splitlines() if line.strip()), type(e).__name__)
        raise ModelPreparationError(f"could not convert the tokenizer of '{src}' to OpenVINO: {reason}") from None
