"""Social events: a social-listening export, CSV (with a header) or JSON lines, read
through a layout (``transforms/layouts/social/``): the project's own format (``cjm``)
or a vendor's. See ``transforms.layouts`` for how a file's layout is picked.
"""

from __future__ import annotations

from pathlib import Path

from transforms import layouts
from transforms.common import AdapterResult, BatchContext
from transforms.readers import CSV_GLOBS, JSON_GLOBS

SOURCE = "social"
FILE_GLOBS = CSV_GLOBS + JSON_GLOBS
# The project's own format.
COLUMNS = layouts.own(SOURCE).columns
REQUIRED = list(layouts.own(SOURCE).required)


def parse_file(path: Path, ctx: BatchContext) -> AdapterResult:
    return layouts.parse_file(path, ctx)
