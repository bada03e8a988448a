"""The customer journey map as one self-contained HTML file.

``render`` takes the report dictionary that ``cjm_pipeline.report`` builds from the served
marts and returns a complete page: the stylesheet and script in ``templates/`` are inlined,
and the data is embedded as JSON in ``<script type="application/json" id="cjm-data">``,
which the script reads and draws (journey map, funnel, transitions, drop-off over time,
attribution, ideal path). The file loads nothing: its Content-Security-Policy forbids every
network fetch, so it opens the same offline, from a mail attachment or a file share.

Everything shown is computed upstream; the page only formats, sorts and picks. NaN and
infinities become ``null`` (JSON has neither), and every ``</`` in the JSON is written as
``<\\/`` so no text in the data can close the script element early.

``write`` renders to a path atomically: readers see the old file or the new one, never a
half-written report.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import html
import json
import math
import os
import re
import tempfile
from decimal import Decimal
from pathlib import Path
from typing import Any

TEMPLATES = Path(__file__).parent / "templates"

CSP = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:"

DEFAULT_TITLE = "Customer journey map"

_PLACEHOLDER = re.compile(r"\{\{([A-Z]+)\}\}")


def _clean(value: Any) -> Any:
    """The value with NaN and infinities as None, Decimals as numbers, dates as ISO text."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Decimal):
        if not value.is_finite():
            return None
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(key): _clean(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_clean(item) for item in value]
    return value


def data_json(data: dict) -> str:
    """``data`` as JSON that is safe inside a ``<script>`` element."""
    text = json.dumps(_clean(data), default=str, allow_nan=False, ensure_ascii=False)
    # "</" would let a text field end the element; "<!--" could make the HTML parser treat
    # a later "</script>" as text. Both escapes are still valid JSON for the same strings.
    return text.replace("<!--", "\\u003c!--").replace("</", "<\\/")


def render(data: dict) -> str:
    """The report page for ``data`` (the dictionary built by ``cjm_pipeline.report``)."""
    title = str(data.get("title") or DEFAULT_TITLE)
    run_date = data.get("run_date")
    full_title = f"{title} · {run_date}" if run_date else title
    values = {
        "CSP": CSP,  # a constant with no quote or ampersand: safe in the attribute as is
        "TITLE": html.escape(full_title),
        "HEADING": html.escape(title),
        "CSS": (TEMPLATES / "report.css").read_text(encoding="utf-8"),
        "JS": (TEMPLATES / "report.js").read_text(encoding="utf-8"),
        "DATA": data_json(data),
    }
    template = (TEMPLATES / "report.html").read_text(encoding="utf-8")
    # One pass over the template only: inserted text is never searched for placeholders.
    return _PLACEHOLDER.sub(lambda match: values[match.group(1)], template)


def write(data: dict, path: Path) -> Path:
    """Render ``data`` to ``path`` (UTF-8) through a temporary file and ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = render(data)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        # mkstemp creates the file private; a report is meant to be read by others.
        tmp.chmod(0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    return path
