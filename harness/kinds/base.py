"""What the harness knows about one scenario kind, in one place: `KindSpec`."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal, TypeVar

from pydantic import BaseModel, ConfigDict

from harness.core.metrics import TPOT, OutputThroughput

if TYPE_CHECKING:
    from harness.core.schema import CellSpec


@dataclass(frozen=True)
class Column:
    """One metric column of a report table: `stat` is "spread" (median ± sd) or a Summary field."""

    header: str
    metric: str
    stat: str = "spread"
    digits: int = 1


# longest prompt (or shared prefix) a suite may ask for: far past any model's context, short of a prompt whose
# making alone would exhaust the machine
MAX_PROMPT_TOKENS = 4_194_304


class Params(BaseModel):
    """A kind's scenario parameters with their defaults. A suite gives any of them as a value or a list
    (an axis); the cell key holds the given ones plus `keyed`, whose defaults are part of what a cell is."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)
    keyed: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def default_axes(cls, axes: dict[str, list[Any]]) -> dict[str, list[Any]]:
        """The axes with `keyed` parameters the suite left out set to their defaults."""
        out = dict(axes)
        for name in cls.keyed:
            out.setdefault(name, [cls.model_fields[name].default])
        return out

    @classmethod
    def check_axes(cls, axes: dict[str, list[Any]]) -> None:
        """Rules between parameters over all their axis values (raise ValueError); none by default."""

    def requests_per_call(self) -> int:
        """Prompts one measured call takes (a batch or the requests in flight); one by default."""
        return 1

    def outputs_text(self) -> bool:
        """Whether this cell's calls answer with generated text (of a kind that generates text); yes by default."""
        return True

    def window_tokens(self) -> int | None:
        """Tokens one call runs through the model at once where the kind fixes them itself (not prompt + new
        tokens); held to the model's context like a prompt. None by default."""
        return None

    @classmethod
    def of(cls: type[P], cell: CellSpec) -> P:
        """The cell's parameters with defaults filled in, as the kind's own type."""
        return cls.model_validate(cell.scenario.params, strict=False)


P = TypeVar("P", bound=Params)


@dataclass(frozen=True)
class Knob:
    """One setting `harness tune` may change, written as a side item's name (`properties.NAME`: an OpenVINO property;
    `params.NAME`: a scenario parameter of the kind), and the values it tries. None among them leaves the cell as the
    suite has it; every default space starts with it, so the defaults are one of the settings searched."""

    name: str
    choices: tuple[Any, ...] = ()
    # the choices are thread counts up to the host's logical CPUs (1, powers of two, the count itself)
    upto_cpus: bool = False
    devices: tuple[str, ...] = ()  # applies on these devices only (a CPU plugin property); empty: any
    remote: bool = False  # applies to a remote server's cells too (else the server's own settings, not ours)
    # the kind's own rule for which of its cells the knob changes anything in (None: every cell)
    applies: Callable[[CellSpec], bool] | None = None


# OpenVINO properties of the LLM pipelines (shared/stack-facts.md: accepted on CPU), searched by default
THREADS = Knob("properties.INFERENCE_NUM_THREADS", (None,), upto_cpus=True, devices=("CPU",))
HINT = Knob("properties.PERFORMANCE_HINT", (None, "LATENCY", "THROUGHPUT"))
KV_PRECISION = Knob("properties.KV_CACHE_PRECISION", (None, "u8", "f16"))
DYNAMIC_QUANTIZATION = Knob("properties.DYNAMIC_QUANTIZATION_GROUP_SIZE", (None, 0, 32, 64), devices=("CPU",))
LLM_PROPERTY_KNOBS = (THREADS, HINT, KV_PRECISION, DYNAMIC_QUANTIZATION)
# what every other OpenVINO pipeline's compile takes
DEVICE_KNOBS = (THREADS, HINT)


class Unsupported(ValueError):
    """A kind's hook cannot serve this cell; the message says why in one line."""


class NoParams(Params):
    pass


@dataclass(frozen=True)
class ReportTable:
    """How reports show a kind: its section title and note, the scenario table's columns, the release
    report's two headline figures, and the precision table's speed and accuracy columns."""

    title: str
    columns: tuple[Column, ...]
    headline: tuple[Column, Column]
    note: str = ""
    speed: tuple[Column, ...] = ()
    speedup_metric: str = TPOT.tag  # the precision table's speed-up against fp16 is taken on it
    accuracy: tuple[Column, ...] = ()


# The kept first output of two cells -> accuracy figures (metric tag -> value) and a detail line
CompareOutputs = Callable[[Any, Any], "tuple[dict[str, float], str] | None"]


@dataclass(frozen=True)
class KindSpec:
    """A scenario kind: parameters, backend, report table and which checks and accuracy apply."""

    name: str
    params: type[Params]
    # "module:NAME" of its backend (harness/execute/backends/driver.py): a `Backend` (a pipeline and one call at a
    # time), a `LoadBackend` (a server and loads), or a function `run(cell, models, emit)`; imported in the worker
    # only (it needs OpenVINO)
    backend: str
    report: ReportTable
    generates_text: bool = True  # token counts, greedy reference, repeat of the text
    # its output ids come from a streamer (LLMPipeline, VLMPipeline): without one (token_timing genai, beam search)
    # they are the text re-encoded
    streamed_ids: bool = False
    same_as_greedy: bool = False  # greedy output must equal the plain greedy cell's
    greedy_reference: bool = False  # the plain greedy cell that same_as_greedy kinds are held to
    uses_draft: bool = False  # loads the suite model's `draft` beside it (prepared as a model of its own)
    # prepares the model's fp16 IR beside it (same source and compression): the baseline its logits are held to
    logits_baseline: bool = False
    # runtimes other than OpenVINO that can run its cells (CellSpec.runtime) -> "module:NAME" of their backend, as
    # `backend` names OpenVINO's; a runtime not named here has no cells of the kind
    peers: tuple[tuple[str, str], ...] = ()
    # runs the model's original Hugging Face weights (PyTorch, f32): the text accuracy reference of every cell of
    # its model where the suite has one, and needs a Hugging Face source
    original_weights: bool = False
    # LLMPipeline constructor options the kind turns on (e.g. prompt_lookup)
    pipeline_options: tuple[tuple[str, bool], ...] = ()
    drafts: bool = False  # proposes tokens the model verifies several at a time (acceptance, tokens per step)
    # requests go to an OpenAI-style server: the suite's `server` and `slo` apply, figures of the whole load
    served: bool = False
    # which of a same_as_greedy kind's cells send the greedy cell's own prompts (None: every cell)
    greedy_comparable: Callable[[CellSpec], bool] | None = None
    throughput_metric: str = OutputThroughput.tag  # the kind's tokens-per-second figure (the fidelity table's)
    precision_axis: bool = True  # precisions change what it measures (False: the precision table leaves it out)
    # each call's input length (as its pipeline counted it) must be the synthetic prompt length asked for, +-1
    exact_input_length: bool = False
    # "greedy": text accuracy against the plain greedy (or PyTorch) cell; "same_kind": against the fp16 cell of
    # this kind and parameters; "none": no accuracy figure
    reference: Literal["greedy", "same_kind", "none"] = "greedy"
    # accuracy on the first measured call's kept outputs (vectors, images, audio); None: on the generated text
    compare_outputs: CompareOutputs | None = None
    repeat_tolerance: float = 1e-5  # largest difference allowed between a kept output and its repeat
    # plain decoding reads every weight once per generated token, so the memory roofline applies
    # (harness/analyze/roofline.py); drafted kinds read the main model's weights once per several tokens
    roofline: bool = False
    # plain greedy decoding of the model's own weights: its f32 validation outputs are scored by transformers on the
    # Hugging Face weights (harness/execute/transformers_reference.py), an implementation independent of OpenVINO's
    transformers_reference: bool = False
    # "module:function" (values, suite_file) -> values: the cell's file parameters made absolute (relative to the
    # suite file) and read once as the suite expands; in the layer that reads such files, above the registry
    resolve_files: str | None = None
    # whether a cell needs its model prepared here (a remote server serves its own)
    needs_local_model: Callable[[CellSpec], bool] = lambda cell: True
    # "module:function" cell -> None: what the prepare phase checks instead for a cell with no local model, raising
    # for one that cannot run (a remote server's cell: the tokenizer it names, loaded once)
    without_local_model: str | None = None
    # "module:function" (cell, suite_file, said) -> cell: the kind's rules for an expanded cell, raising
    # HarnessInputError naming the suite field; `said` holds the warnings already given for the suite
    cell_rules: str | None = None
    # "module:function" cell -> the bare reference loop's task fields (harness/execute/reference.py: pipeline,
    # properties, draft, scheduler, generation), raising Unsupported for cells it cannot run; None: no fidelity
    bare_reference: str | None = None
    # what `harness tune` searches when the suite declares no space (harness/plan/tuning.py); empty: nothing
    tune_space: tuple[Knob, ...] = ()

    def files_resolved(self, values: dict[str, Any], suite_file: Path) -> dict[str, Any]:
        """A cell's parameter values with its files resolved and checked (unchanged for kinds without files)."""
        return _named(self.resolve_files)(values, suite_file) if self.resolve_files else values

    def check_without_local_model(self, cell: CellSpec) -> None:
        if self.without_local_model:
            _named(self.without_local_model)(cell)

    def cell_checked(self, cell: CellSpec, suite_file: Path, said: set[str]) -> CellSpec:
        """An expanded cell after its kind's rules (unchanged for kinds without)."""
        return _named(self.cell_rules)(cell, suite_file, said) if self.cell_rules else cell

    def bare_reference_fields(self, cell: CellSpec) -> dict[str, Any]:
        assert self.bare_reference is not None
        return _named(self.bare_reference)(cell)

    def runs_on(self, runtime: str) -> bool:
        return runtime == "openvino" or runtime in dict(self.peers)

    def named_backend(self, runtime: str = "openvino") -> Any:
        """What `backend` (or the runtime's peer backend) names (the execute layer knows its types)."""
        return _named(self.backend if runtime == "openvino" else dict(self.peers)[runtime])


def _named(ref: str) -> Any:
    """The function a "module:function" reference names, imported on first use."""
    module, _, function = ref.partition(":")
    return getattr(importlib.import_module(module), function)
