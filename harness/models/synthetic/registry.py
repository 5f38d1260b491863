"""The families of built-in models, by spec type: adding a family is a module (its spec and `FAMILY`) named
in both lists here."""

from __future__ import annotations

from typing import Any

from harness.models.synthetic import alias, bert, diffusion, draft, llama, llava, speecht5, video, whisper
from harness.models.synthetic.base import Family

SyntheticSpec = (llama.LlamaSpec | alias.AliasSpec | draft.DraftSpec | bert.BertSpec | llava.LlavaSpec
                 | whisper.WhisperSpec | diffusion.DiffusionSpec | speecht5.SpeechT5Spec | video.VideoSpec)

FAMILIES: dict[type, Family[Any]] = {f.spec: f for f in (
    llama.FAMILY, alias.FAMILY, draft.FAMILY, bert.FAMILY, llava.FAMILY, whisper.FAMILY, diffusion.FAMILY,
    speecht5.FAMILY, video.FAMILY,
)}


def family(spec: SyntheticSpec) -> Family[Any]:
    return FAMILIES[type(spec)]
