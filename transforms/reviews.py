"""Reviews: a review-platform export, CSV (with a header) or JSON lines, read through a
layout (``transforms/layouts/reviews/``): the project's own format (``cjm``) or a
vendor's. See ``transforms.layouts`` for how a file's layout is picked.

A review that says it recommends is a loyalty signal (the loyalty_signals seed); a
review keyed by its order alone links to the order's buyer.
"""

from __future__ import annotations

from pathlib import Path

from transforms import layouts
from transforms.common import AdapterResult, BatchContext
from transforms.readers import CSV_GLOBS, JSON_GLOBS

SOURCE = "reviews"
FILE_GLOBS = CSV_GLOBS + JSON_GLOBS
# The project's own format.
COLUMNS = layouts.own(SOURCE).columns
REQUIRED = list(layouts.own(SOURCE).required)


def parse_file(path: Path, ctx: BatchContext) -> AdapterResult:
    return layouts.parse_file(path, ctx)
