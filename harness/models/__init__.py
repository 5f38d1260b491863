"""Model preparation: synthetic Hugging Face models and cached OpenVINO IR exports."""

from harness.models.prepare import PreparedModel, classify_source, prepare_model, validate_ir_dir
from harness.models.synthetic import SYNTHETIC_MODELS, build_synthetic

__all__ = ["PreparedModel", "SYNTHETIC_MODELS", "build_synthetic", "classify_source", "prepare_model",
           "validate_ir_dir"]
