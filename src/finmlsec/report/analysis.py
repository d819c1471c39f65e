"""Rendering an :class:`~finmlsec.threatmodel.Analysis` as HTML, Markdown or JSON.

HTML is one self-contained file (inline CSS and SVG, no script, no network); templates are Jinja2
with autoescape on. Markdown is for pull requests and tickets.

Example:
    >>> from finmlsec.spec import parse_spec
    >>> from finmlsec.threatmodel import analyze
    >>> a = analyze(parse_spec('''
    ... organisations: [{id: bank}, {id: vendor}]
    ... roles: {training_data_provider: bank, system_user: bank,
    ...         model_generator: vendor, model_operator: vendor}
    ... '''))
    >>> html = render_analysis(a, "html")
    >>> "<svg" in html and "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")
    True
    >>> render_analysis(a, "md").splitlines()[2]
    '**Type 7** (partition {TDP,SU} {MG,MO}) in the classification of Inoue & Une.'
"""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from finmlsec.errors import ConfigError
from finmlsec.report.diagram import ROLE_TITLES, render_diagram
from finmlsec.threatmodel.analysis import Analysis
from finmlsec.threatmodel.catalogue import load_catalogue

Format = Literal["html", "md", "json"]
FORMATS: tuple[str, ...] = ("html", "md", "json")


def _data_title(data_id: str) -> str:
    return load_catalogue().data[data_id].title  # type: ignore[index]


def _md(text: object) -> str:
    """Escape what would break a Markdown table cell or list item."""
    return str(text).replace("|", "\\|").replace("\n", " ")


@lru_cache(maxsize=1)
def _env() -> Environment:
    # autoescape for *.html.j2; Markdown (*.md.j2) is not HTML, its ``md`` filter escapes tables
    env = Environment(
        loader=PackageLoader("finmlsec.report", "templates"),
        autoescape=select_autoescape(["html", "html.j2"]),
        undefined=StrictUndefined,
        trim_blocks=False,
        keep_trailing_newline=True,
    )
    env.filters["role_title"] = lambda r: ROLE_TITLES.get(r, r)
    env.filters["data_title"] = _data_title
    env.filters["md"] = _md
    return env


def render_analysis(analysis: Analysis, fmt: str = "html") -> str:
    """The report text in ``fmt`` (``html``, ``md`` or ``json``)."""
    if fmt == "json":
        return analysis.to_json() + "\n"
    if fmt == "html":
        svg = Markup(render_diagram(analysis))  # noqa: S704  (built with escaped text only)
        return _env().get_template("analysis.html.j2").render(a=analysis, svg=svg)
    if fmt == "md":
        return _env().get_template("analysis.md.j2").render(a=analysis)
    raise ConfigError(f"The 'format' parameter of render_analysis must be one of {FORMATS}. "
                      f"Got {fmt!r} instead.")
