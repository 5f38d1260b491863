"""How a run's cells are run here: the model cache, the devices, the environments, the host's bandwidth."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from harness.plan.environments import PreparedEnvironment


@dataclass
class RunOptions:
    cache_dir: Path
    available_devices: list[str]
    # Test-only: cell key -> fault the worker injects ("crash", "hang").
    faults: dict[str, str] = field(default_factory=dict)
    keep_workdirs: bool = False
    # environment name -> a built environment; cells whose spec names one run their measuring workers in it
    environments: dict[str, PreparedEnvironment] = field(default_factory=dict)
    # the host's measured triad bandwidth (harness.analyze.roofline), a cell value of every cell it measures
    memory_bandwidth_gbs: float | None = None
