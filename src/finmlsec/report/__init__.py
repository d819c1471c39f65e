"""Reports: Jinja2 templates (autoescape), the system diagram; HTML is self-contained, no network.

Analysis reports: :func:`finmlsec.report.analysis.render_analysis`; the reusable SVG diagram:
:func:`finmlsec.report.diagram.render_diagram`.
"""
