"""An SVG diagram of a system, like the paper's Figures 1-5.

Organisations are boxes holding the entities (roles) they play; the flows A-G are labelled arrows;
the data an attacker can reach is marked in red (the entity holding it and the flows carrying it).
The SVG is plain text with no external references, so it embeds in a self-contained HTML file.

Example:
    >>> from finmlsec.spec import parse_spec
    >>> from finmlsec.threatmodel import analyze
    >>> spec = parse_spec('''
    ... organisations: [{id: bank}, {id: vendor}]
    ... roles: {training_data_provider: bank, system_user: bank,
    ...         model_generator: vendor, model_operator: vendor}
    ... ''')
    >>> svg = render_diagram(analyze(spec))
    >>> svg.startswith("<svg") and svg.count('class="org"') == 2 and svg.count('class="flow')
    7
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import dataclass
from xml.sax.saxutils import escape

from finmlsec.threatmodel.analysis import Analysis, OrganisationView

ROLE_TITLES = {
    "training_data_provider": "Training-data provider",
    "system_user": "System user",
    "model_generator": "Model generator",
    "model_operator": "Model operator",
}

FLOWS: dict[str, tuple[str, str, str]] = {
    "A": ("training_data_provider", "model_generator", "training data"),
    "B": ("model_generator", "model_generator", "training (model generation)"),
    "C": ("model_generator", "model_operator", "the model"),
    "D": ("system_user", "model_operator", "input data"),
    "E": ("model_operator", "model_operator", "prediction"),
    "F": ("model_operator", "system_user", "output data"),
    "G": ("system_user", "training_data_provider", "false-prediction data"),
}
"""Flow letter -> (from role, to role, what it carries); B and E are processes inside an entity."""

_FLOW_DATA = {"A": "training_data", "D": "model_io", "F": "model_io", "G": "false_prediction_data"}
_HOLDS = {
    "training_data_provider": "training_data",
    "model_generator": "training_data",
    "system_user": "model_io",
    "model_operator": "model_io",
}
_DATA_WORDS = {
    "training_data": "training data",
    "model_io": "model input/output",
    "false_prediction_data": "false-prediction data",
}

_COL_W, _GAP, _MARGIN, _HEADER, _LANE = 240, 120, 30, 46, 22
_OFFSETS = {"A": -8, "C": 8, "D": -12, "F": 12, "G": 0}
_ENT_W, _ENT_H, _PITCH = 176, 48, 92
_RED, _INK, _GREY = "#c62828", "#263238", "#78909c"


@dataclass(frozen=True)
class _Box:
    org: str
    role: str
    x: float
    y: float

    @property
    def cx(self) -> float:
        return self.x + _ENT_W / 2

    @property
    def cy(self) -> float:
        return self.y + _ENT_H / 2


def _reached(analysis: Analysis) -> dict[str, set[str]]:
    """data id -> organisations through which the attacker reaches it."""
    return {item.data: set(item.exposed_by) for item in analysis.reach_details}


def _edges(orgs: list[OrganisationView]) -> list[tuple[str, str, str, str, str]]:
    """(letter, src org, src role, dst org, dst role) for every arrow to draw."""
    out = []
    for letter, (src_role, dst_role, _) in FLOWS.items():
        for src in (o for o in orgs if src_role in o.roles):
            for dst in (o for o in orgs if dst_role in o.roles):
                if src_role != dst_role or src.id == dst.id:
                    out.append((letter, src.id, src_role, dst.id, dst_role))
    return out


def _column_order(orgs: list[OrganisationView]) -> list[OrganisationView]:
    """The order of organisation columns with the fewest arrows jumping over a column."""
    if len(orgs) > 6:
        return orgs
    edges = _edges(orgs)

    def cost(order: Iterable[OrganisationView]) -> int:
        col = {o.id: i for i, o in enumerate(order)}
        return sum(
            100 * max(0, abs(col[s] - col[d]) - 1) + abs(col[s] - col[d])
            for _, s, _, d, _ in edges
        )

    return list(min(itertools.permutations(orgs), key=cost))  # min keeps the first of ties


def render_diagram(analysis: Analysis) -> str:
    """The SVG (a string starting with ``<svg``) for an :class:`Analysis`."""
    orgs = _column_order([o for o in analysis.organisations if o.roles])
    reached = _reached(analysis)
    col_of = {o.id: i for i, o in enumerate(orgs)}
    edges = _edges(orgs)
    long_edges = [e for e in edges if abs(col_of[e[1]] - col_of[e[3]]) > 1]
    top = _MARGIN + _LANE * len(long_edges)
    boxes: dict[tuple[str, str], _Box] = {}
    parts: list[str] = []
    height = 0.0
    for i, org in enumerate(orgs):
        x = _MARGIN + i * (_COL_W + _GAP)
        col_h = _HEADER + len(org.roles) * _PITCH - (_PITCH - _ENT_H) + 40
        height = max(height, col_h)
        label = org.name or org.id
        sub = f"{org.id} \u00b7 security: {org.security}" if org.name else f"security: {org.security}"
        parts.append(
            f'<g class="org" data-org="{escape(org.id)}">'
            f'<rect x="{x}" y="{top}" width="{_COL_W}" height="{col_h}" rx="10" '
            f'fill="#eceff1" stroke="{_GREY}" stroke-width="1.5"/>'
            f'<text x="{x + 12}" y="{top + 20}" font-weight="bold">{escape(_clip(label))}</text>'
            f'<text x="{x + 12}" y="{top + 36}" font-size="11" fill="{_GREY}">'
            f"{escape(_clip(sub, 40))}</text></g>"
        )
        for j, role in enumerate(org.roles):
            box = _Box(org.id, role, x + (_COL_W - _ENT_W) / 2, top + _HEADER + j * _PITCH)
            boxes[(org.id, role)] = box
            held = _HOLDS[role]
            parts.append(_entity(box, held if org.id in reached.get(held, set()) else None))
    arrows: list[str] = []
    for letter, s_org, s_role, d_org, d_role in edges:
        exposed = reached.get(_FLOW_DATA.get(letter, ""), set())
        hot = s_org in exposed or d_org in exposed
        edge = (letter, s_org, s_role, d_org, d_role)
        lane = _MARGIN - 6 + _LANE * long_edges.index(edge) if edge in long_edges else None
        arrows.append(_arrow(letter, FLOWS[letter][2], boxes[(s_org, s_role)],
                             boxes[(d_org, d_role)], hot, lane))
    width = _MARGIN * 2 + len(orgs) * _COL_W + max(0, len(orgs) - 1) * _GAP
    legend_y = top + height + 24
    legend = _legend(legend_y, analysis)
    total_h = legend_y + 44
    width = max(width, 640)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" viewBox="0 0 {width} {total_h}" '
        f'width="{width}" height="{total_h}" font-family="Helvetica, Arial, sans-serif" '
        f'font-size="13" fill="{_INK}">'
        f"<title>Organisations, entities and flows A-G{_type_words(analysis)}</title>"
        f"{_defs()}{''.join(parts)}{''.join(arrows)}{legend}</svg>"
    )


def _clip(text: str, n: int = 30) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def _type_words(analysis: Analysis) -> str:
    if analysis.type is not None:
        return f" (type {analysis.type})"
    near = ", ".join(str(t) for t in analysis.nearest_types)
    return f" (no paper type; nearest: {near})"


def _defs() -> str:
    def marker(name: str, colour: str) -> str:
        return (
            f'<marker id="{name}" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
            f'markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" '
            f'fill="{colour}"/></marker>'
        )

    return f"<defs>{marker('arrow', _INK)}{marker('arrow-hot', _RED)}</defs>"


def _entity(box: _Box, hot_data: str | None) -> str:
    stroke, dash, width = (_RED, ' stroke-dasharray="5 3"', 2.5) if hot_data else (_INK, "", 1.2)
    tag = ""
    if hot_data:
        tag = (f'<text x="{box.cx}" y="{box.y + 38}" text-anchor="middle" font-size="11" '
               f'fill="{_RED}">reachable: {_DATA_WORDS[hot_data]}</text>')
    cls = "entity reachable" if hot_data else "entity"
    return (
        f'<g class="{cls}" data-role="{box.role}">'
        f'<rect x="{box.x}" y="{box.y}" width="{_ENT_W}" height="{_ENT_H}" rx="6" fill="#ffffff" '
        f'stroke="{stroke}" stroke-width="{width}"{dash}/>'
        f'<text x="{box.cx}" y="{box.y + 20}" text-anchor="middle" font-weight="bold">'
        f"{ROLE_TITLES[box.role]}</text>{tag}</g>"
    )


def _arrow(letter: str, what: str, src: _Box, dst: _Box, hot: bool, lane: float | None) -> str:
    colour, marker = (_RED, "arrow-hot") if hot else (_INK, "arrow")
    offset = _OFFSETS.get(letter, 0)
    if src == dst:
        x, y = src.x + _ENT_W - 40, src.y + _ENT_H
        d = f"M{x},{y} C{x - 6},{y + 30} {x + 30},{y + 30} {x + 24},{y}"
        lx, ly = x + 12, y + 24
    elif src.x == dst.x:
        down = dst.y > src.y
        side = src.x - 1 if down else src.x + _ENT_W + 1
        rows = round(abs(dst.y - src.y) / _PITCH)  # skip the entities in between
        bulge = (-1 if down else 1) * min(14 + 12 * (rows - 1), (_COL_W - _ENT_W) / 2 - 2)
        y1, y2 = src.cy + offset / 2, dst.cy + offset / 2
        d = f"M{side},{y1} C{side + bulge},{y1} {side + bulge},{y2} {side},{y2}"
        frac = 0.5 if rows <= 1 else 0.25  # between two entities, not beside the skipped one
        lx, ly = side + bulge * (0.75 if rows <= 1 else 0.6), y1 + (y2 - y1) * frac
    else:
        right = dst.x > src.x
        x1 = src.x + _ENT_W if right else src.x
        x2 = dst.x if right else dst.x + _ENT_W
        y1, y2 = src.cy + offset, dst.cy + offset
        if lane is None:
            dx = (x2 - x1) / 2
            d = f"M{x1},{y1} C{x1 + dx},{y1} {x2 - dx},{y2} {x2},{y2}"
            lx, ly = (x1 + x2) / 2, (y1 + y2) / 2
        else:  # over the top of the columns in between, through the gaps beside the ends
            step = 1 if right else -1
            xa = x1 + step * (_GAP / 2 + (_COL_W - _ENT_W) / 2 + offset / 2)
            xb = x2 - step * (_GAP / 2 + (_COL_W - _ENT_W) / 2 - offset / 2)
            r = 8
            d = (f"M{x1},{y1} L{xa - step * r},{y1} Q{xa},{y1} {xa},{y1 - r} L{xa},{lane + r} "
                 f"Q{xa},{lane} {xa + step * r},{lane} L{xb - step * r},{lane} "
                 f"Q{xb},{lane} {xb},{lane + r} L{xb},{y2 - r} Q{xb},{y2} {xb + step * r},{y2} "
                 f"L{x2},{y2}")
            lx, ly = (xa + xb) / 2, lane
    cls = "flow reachable" if hot else "flow"
    return (
        f'<g class="{cls}" data-flow="{letter}"><title>({letter}) {escape(what)}</title>'
        f'<path d="{d}" fill="none" stroke="#ffffff" stroke-width="5"/>'
        f'<path d="{d}" fill="none" stroke="{colour}" stroke-width="{2.2 if hot else 1.4}" '
        f'marker-end="url(#{marker})"/>'
        f'<circle cx="{lx}" cy="{ly}" r="9" fill="#ffffff" stroke="{colour}"/>'
        f'<text x="{lx}" y="{ly + 4}" text-anchor="middle" font-size="11" font-weight="bold" '
        f'fill="{colour}">{letter}</text></g>'
    )


def _legend(y: float, analysis: Analysis) -> str:
    items = [f"({k}) {v[2]}" for k, v in FLOWS.items()]
    reach = ", ".join(_DATA_WORDS[d] for d in analysis.reach) or "nothing"
    return (
        f'<g class="legend"><text x="{_MARGIN}" y="{y}" font-size="11">'
        f"{escape('  '.join(items[:4]))}</text>"
        f'<text x="{_MARGIN}" y="{y + 16}" font-size="11">{escape("  ".join(items[4:]))}</text>'
        f'<text x="{_MARGIN}" y="{y + 34}" font-size="11" fill="{_RED}">red, dashed: data the '
        f"attacker can reach ({escape(reach)})</text></g>"
    )


__all__ = ["FLOWS", "ROLE_TITLES", "render_diagram"]
