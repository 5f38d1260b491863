"""Small GGUF files for the tests, written from a Llama Hugging Face folder (the built-in tiny model) the way
llama.cpp's convert_hf_to_gguf.py writes a llama model: llama.cpp's tensor names, Q and K rows permuted for its
rotary layout (transformers' GGUF loader permutes them back), 1-D tensors (norms) in F32, the 2-D weights in the
asked type, the llama.* hyperparameters and the tokenizer.ggml.* vocabulary of a byte-level BPE ("gpt2")
tokenizer. No network: only the `gguf` package's writer and quantizers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

# general.file_type (llama.cpp's LlamaFileType) for a file whose 2-D weights are all of one type
FILE_TYPES = {"F16": 1, "Q4_0": 2, "Q4_1": 3, "Q8_0": 7}
QUANT_TYPES = tuple(FILE_TYPES)
# Hugging Face Llama names -> llama.cpp's (gguf.TensorNameMap for MODEL_ARCH.LLAMA)
GLOBAL_NAMES = {"model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight",
                "lm_head.weight": "output.weight"}
LAYER_NAMES = {"input_layernorm": "attn_norm", "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k",
               "self_attn.v_proj": "attn_v", "self_attn.o_proj": "attn_output", "post_attention_layernorm": "ffn_norm",
               "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up", "mlp.down_proj": "ffn_down"}


def permute(w: np.ndarray, n_head: int) -> np.ndarray:
    """llama.cpp's LlamaModel.permute: each head's rows from Hugging Face's rotate-half order to interleaved pairs."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def gguf_name(hf_name: str) -> str:
    if hf_name in GLOBAL_NAMES:
        return GLOBAL_NAMES[hf_name]
    parts = hf_name.split(".")  # model.layers.N.<module...>.weight
    if parts[:2] != ["model", "layers"] or parts[-1] != "weight":
        raise ValueError(f"no llama.cpp name for tensor {hf_name}")
    return f"blk.{parts[2]}.{LAYER_NAMES['.'.join(parts[3:-1])]}.weight"


def vocabulary(hf_dir: Path) -> tuple[list[str], list[int], list[str]]:
    """Tokens by id, their GGUF token types (CONTROL for special added tokens, USER_DEFINED for other added
    tokens, NORMAL for the rest) and the BPE merges as "left right" strings, from tokenizer.json."""
    import gguf

    spec = json.loads((hf_dir / "tokenizer.json").read_text())
    model = spec["model"]
    assert model["type"] == "BPE", model["type"]
    by_id: dict[int, str] = {i: t for t, i in model["vocab"].items()}
    kinds: dict[int, int] = {}
    for added in spec.get("added_tokens", []):
        by_id[added["id"]] = added["content"]
        kinds[added["id"]] = gguf.TokenType.CONTROL if added["special"] else gguf.TokenType.USER_DEFINED
    assert sorted(by_id) == list(range(len(by_id))), "token ids are not contiguous"
    tokens = [by_id[i] for i in range(len(by_id))]
    types = [int(kinds.get(i, gguf.TokenType.NORMAL)) for i in range(len(tokens))]
    merges = [m if isinstance(m, str) else " ".join(m) for m in model["merges"]]
    return tokens, types, merges


def write_gguf(hf_dir: Path, out: Path, quant: str = "F16", *, tokenizer_model: str = "gpt2", pre: str = "gpt2",
               weights: bool = True) -> Path:
    """`out`, a llama GGUF file of the Llama model in `hf_dir` with its 2-D weights in `quant` (F16, Q8_0, Q4_0,
    Q4_1). `tokenizer_model` and `pre` are written as given (to make files a reader must refuse); without
    `weights` the file holds the metadata alone (enough for the tokenizer)."""
    import gguf
    from safetensors.numpy import load_file
    from transformers import AutoTokenizer

    qtype = gguf.GGMLQuantizationType[quant]
    config: dict[str, Any] = json.loads((hf_dir / "config.json").read_text())
    assert config["model_type"] == "llama", config["model_type"]
    n_head, n_kv = config["num_attention_heads"], config.get("num_key_value_heads") or config["num_attention_heads"]
    head_dim = config.get("head_dim") or config["hidden_size"] // n_head
    rope = config.get("rope_parameters") or {}
    rope_theta = rope.get("rope_theta", config.get("rope_theta", 10000.0))
    hf_tok = AutoTokenizer.from_pretrained(hf_dir)
    tokens, types, merges = vocabulary(hf_dir)

    w = gguf.GGUFWriter(out, "llama")
    w.add_name(hf_dir.name)
    w.add_type("model")
    w.add_block_count(config["num_hidden_layers"])
    w.add_context_length(config["max_position_embeddings"])
    w.add_embedding_length(config["hidden_size"])
    w.add_feed_forward_length(config["intermediate_size"])
    w.add_head_count(n_head)
    w.add_head_count_kv(n_kv)
    w.add_rope_freq_base(float(rope_theta))
    w.add_layer_norm_rms_eps(float(config["rms_norm_eps"]))
    w.add_file_type(FILE_TYPES[quant])
    w.add_vocab_size(config["vocab_size"])
    w.add_rope_dimension_count(head_dim)
    w.add_tokenizer_model(tokenizer_model)
    w.add_tokenizer_pre(pre)
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(merges)
    for key, token in (("bos", hf_tok.bos_token), ("eos", hf_tok.eos_token), ("unk", hf_tok.unk_token),
                       ("pad", hf_tok.pad_token)):
        if token is not None:
            getattr(w, f"add_{key}_token_id")(tokens.index(token))
    # tiny's tokenizer prepends BOS (its post-processor); the file says so the way llama.cpp's converter does
    w.add_add_bos_token(hf_tok("a")["input_ids"][0] == hf_tok.bos_token_id)
    if hf_tok.chat_template:
        w.add_chat_template(hf_tok.chat_template)
    w.add_quantization_version(gguf.GGML_QUANT_VERSION)

    if weights:
        tensors = load_file(hf_dir / "model.safetensors")
        if config.get("tie_word_embeddings"):
            tensors.pop("lm_head.weight", None)  # llama.cpp leaves output.weight out: token_embd is the head
        for hf_name, data in tensors.items():
            data = data.astype(np.float32)
            if hf_name.endswith("self_attn.q_proj.weight"):
                data = permute(data, n_head)
            elif hf_name.endswith("self_attn.k_proj.weight"):
                data = permute(data, n_kv)
            if data.ndim == 1:
                w.add_tensor(gguf_name(hf_name), data)  # norms stay F32
            else:
                packed = gguf.quants.quantize(data, qtype)
                w.add_tensor(gguf_name(hf_name), packed, raw_dtype=qtype)

    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return out
