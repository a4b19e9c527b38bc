"""The explorer page: one self-contained HTML file (inline style, script and data).

The template, style and script live beside this module (``static/``) and are inlined;
nothing is fetched when the page opens (no network, no build step, works from file://).
"""

from __future__ import annotations

import html
import json
import re
from importlib import resources
from typing import Any

from .data import ExplorerData
from .pack import pack

_MARKER = re.compile(r"__(TITLE|CSS|JS|MATH|LIVE|PACK|BLOB)__")


def _static(name: str) -> str:
    return resources.files(__package__).joinpath("static", name).read_text(encoding="utf-8")


def _script_json(obj: Any) -> str:
    """JSON safe inside a <script> element (no ``</script>`` or ``<!--`` can end it)."""
    return json.dumps(obj, separators=(",", ":")).replace("<", "\\u003c")


def payload(data: ExplorerData, model_source: str = "", input_source: str = "",
            level: int = 6) -> dict[str, Any]:
    """What the page loads: ``{"meta": ..., "pack": {"index", "blob", "raw_bytes"}}``
    (the live server answers with the same)."""
    meta = {**data.meta, "model_source": model_source, "input_source": input_source}
    return {"meta": meta, "pack": pack(data, level)}


def render(data: ExplorerData | None, title: str = "clearconv explorer",
           model_source: str = "", input_source: str = "", math_href: str = "docs/MATH.md",
           live: bool = False) -> str:
    """The HTML text of the explorer for ``data`` (None: an empty live page that asks its
    server for the numbers)."""
    blob, pack_json = "", ""
    if data is not None:
        p = payload(data, model_source, input_source)
        blob = p["pack"].pop("blob")
        pack_json = _script_json(p)
    values = {"TITLE": html.escape(title), "CSS": _static("explorer.css"),
              "JS": _static("explorer.js").replace("</", "<\\/"),
              "MATH": html.escape(math_href, quote=True), "LIVE": "1" if live else "0",
              "PACK": pack_json, "BLOB": blob}
    return _MARKER.sub(lambda m: values[m.group(1)], _static("explorer.html"))
