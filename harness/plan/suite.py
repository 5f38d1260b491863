"""Suite files, as most callers use them: read one (`harness.plan.suite_file`), expand it into cells
(`harness.plan.cells`). The schema is `harness.plan.suite_model`, the cell keys `harness.plan.cell_keys`."""

from harness.plan.cells import expand
from harness.plan.suite_file import SUITES_DIR, load_suite, resolve_suite_path

__all__ = ["SUITES_DIR", "expand", "load_suite", "resolve_suite_path"]
