"""``recsys report``: a trained bundle as a page a person would rather look at than read.

Why from the bundle alone: the report must describe exactly the evaluated artefact, months later
and on another machine, without the training data.  Everything it shows — metrics vs baselines,
segments, the precision/recall curve, learned category complements, data summary, split, timings,
versions — was recorded in the bundle's manifest and ``report/*.parquet`` tables at training time.

Two outputs with the same content, written atomically into ``<out>/<version>/``:

* ``report.html`` — one self-contained file (inline CSS, charts as base64 PNG data URIs, no JavaScript);
* ``report.md`` — Markdown referencing the chart PNGs written beside it.

Example
-------
>>> from recsys.bundle import Bundle                                  # doctest: +SKIP
>>> paths = write_report(Bundle.load(path), "reports", tag="crosssell:v1")  # doctest: +SKIP
>>> paths.html                                                        # doctest: +SKIP
PosixPath('reports/v1/report.html')
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recsys.models.base import atomic_dir
from recsys.reporting._complement_png import complement_graph_png
from recsys.reporting._content import ReportContent, build_content, version_of
from recsys.reporting._figures import Image, draw_all
from recsys.reporting._html import render_html
from recsys.reporting._markdown import render_markdown

__all__ = ["RenderedReport", "ReportPaths", "ReportContent", "Image", "build_content", "complement_graph_png",
           "render_report", "write_report"]

HTML_NAME = "report.html"
MARKDOWN_NAME = "report.md"


@dataclass(frozen=True)
class RenderedReport:
    """The report in memory: both documents and the chart images (no files written)."""

    content: ReportContent
    html: str
    markdown: str
    images: list[Image]


@dataclass(frozen=True)
class ReportPaths:
    """Where ``write_report`` put things."""

    directory: Path
    html: Path
    markdown: Path
    images: tuple[Path, ...]


def render_report(bundle: Any, *, tag: str) -> RenderedReport:
    """Build the report of ``bundle`` in memory.

    Parameters
    ----------
    bundle
        A ``recsys.bundle.Bundle`` (or an object with ``manifest``, ``tables`` and optionally
        ``hybrid.generators``).
    tag
        The model tag shown in the title, e.g. ``crosssell:v20250101-120000``.
    """
    content = build_content(bundle, tag=tag)
    images = draw_all(content)
    return RenderedReport(content, render_html(content, images), render_markdown(content, images), images)


def write_report(bundle: Any, out_dir: str | Path, *, tag: str) -> ReportPaths:
    """Write ``report.html``, ``report.md`` and the chart PNGs into ``out_dir/<version>/``.

    The folder is written in a temporary directory beside it and swapped into place, so a reader
    never sees a half-written report and a re-run replaces the previous one whole.

    Parameters
    ----------
    bundle
        The trained bundle (see ``render_report``).
    out_dir
        Parent folder; the report goes into its ``<version>`` sub-folder (``crosssell:v1`` → ``v1``).
    tag
        The model tag, used for the title and the folder name.

    Returns
    -------
    ReportPaths
        The final paths of the folder, both documents and the images.
    """
    report = render_report(bundle, tag=tag)
    target = Path(out_dir) / version_of(tag)
    with atomic_dir(target) as tmp:
        os.chmod(tmp, 0o755)  # mkdtemp makes it private; a report folder is meant to be shared
        for img in report.images:
            (tmp / img.filename).write_bytes(img.png)
        (tmp / MARKDOWN_NAME).write_text(report.markdown, encoding="utf-8")
        (tmp / HTML_NAME).write_text(report.html, encoding="utf-8")
    return ReportPaths(target, target / HTML_NAME, target / MARKDOWN_NAME,
                       tuple(target / img.filename for img in report.images))
