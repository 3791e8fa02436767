"""HTML fallbacks of the views (jinja2, always autoescaped: see _base._ENV).

Kept in a module rather than .html files so they ship with the package without
package-data. Every value is data from a model: never mark it safe.
"""

_STYLE = "font-family: var(--jp-ui-font-family, sans-serif); font-size: 13px; border-collapse: collapse;"

CLUSTER_STATUS = """
<div class="scip-cluster-status">
<strong>{{ _("ARC cluster") }}{% if s.name %} {{ s.name }}{% endif %}</strong>
{% if s.preset %} &middot; {{ _("preset %(name)s", name=s.preset) }}{% endif %} &middot; {{ s.state }}
<table style="STYLE">
<tr><th style="text-align:left">{{ _("Workers requested") }}</th><td>{{ s.workers_requested }}</td></tr>
<tr><th style="text-align:left">{{ _("Pending in Slurm") }}</th><td>{{ s.workers_pending }}</td></tr>
<tr><th style="text-align:left">{{ _("Running in Slurm") }}</th><td>{{ s.workers_running }}</td></tr>
<tr><th style="text-align:left">{{ _("Connected to Dask") }}</th><td>{{ s.workers_connected }}</td></tr>
<tr><th style="text-align:left">{{ _("Scheduler") }}</th><td><code>{{ s.scheduler_address or _("(none)") }}</code></td></tr>
<tr><th style="text-align:left">{{ _("Dashboard") }}</th><td>{% if dashboard_href %}<a href="{{ dashboard_href }}" target="_blank" rel="noopener">{{ s.dashboard_link }}</a>{% else %}{{ s.dashboard_link or _("(none)") }}{% endif %}</td></tr>
</table>
{% if s.message %}<p class="scip-message">{{ s.message }}</p>{% endif %}
</div>
""".replace("STYLE", _STYLE)

JOB_TABLE = """
<table class="scip-jobs" style="STYLE">
<thead><tr>{% for h in headers %}<th style="text-align:left; padding-right:1em">{{ h }}</th>{% endfor %}</tr></thead>
<tbody>
{% for r in rows %}
<tr data-job="{{ r.job_id }}"><td>{{ r.job_id }}</td><td>{{ r.state }}</td><td>{{ r.reason }}</td><td>{{ r.estimated_start }}</td><td>{{ r.elapsed }}</td><td>{{ r.time_limit }}</td><td>{{ r.name }}</td></tr>
{% else %}
<tr><td colspan="{{ headers|length }}">{{ _("No jobs.") }}</td></tr>
{% endfor %}
</tbody>
</table>
{% if error %}<p class="scip-error">{{ error }}</p>{% endif %}
""".replace("STYLE", _STYLE)

LAUNCHER = """
<div class="scip-launcher">
<strong>{{ _("ARC launcher") }}</strong> &middot; {{ phase }}
<table style="STYLE">
{% for name, value in fields %}
<tr><th style="text-align:left">{{ name }}</th><td>{{ value }}</td></tr>
{% endfor %}
</table>
{% if message %}<p class="scip-message">{{ message }}</p>{% endif %}
{% include "launcher_presets.html" %}
<p><em>{{ _("Interactive controls need ipywidgets in JupyterLab.") }}</em></p>
</div>
""".replace("STYLE", _STYLE)

#: Presets the launcher lists greyed, with the refusal ARCCluster would give (LauncherModel.unavailable).
LAUNCHER_PRESETS = """{% if unavailable %}<div class="scip-launcher-greyed" style="color: var(--jp-ui-font-color2, #616161)">
<span>{{ _("Clusters you cannot use from this server:") }}</span>
<ul style="margin: 0.2em 0">{% for p in unavailable %}
<li data-preset="{{ p.name }}" aria-disabled="true"><span class="scip-preset-name">{{ p.label }}</span>: <span class="scip-preset-reason">{{ p.reason }}</span></li>
{% endfor %}</ul></div>{% endif %}"""

STATUS_TITLE = """<b>{{ _("ARC cluster") }}{% if s.name %} {{ s.name }}{% endif %}</b>{% if s.preset %} &middot; {{ _("preset %(name)s", name=s.preset) }}{% endif %}"""

LINK = """{% if href %}<a href="{{ href }}" target="_blank" rel="noopener">{{ text }}</a>{% else %}{{ text or _("(none)") }}{% endif %}"""

ERROR = """<span class="scip-error" style="color: var(--jp-error-color1, #c62828)">{{ message }}</span>"""

COURSE_PANEL = """
<div class="scip-course-panel">
<strong>{{ _("Course %(title)s", title=m.title) }}</strong> (<code>{{ m.course }}</code>)
<table style="font-family: var(--jp-ui-font-family, sans-serif); font-size: 13px">
<tr><th style="text-align:left">{{ _("Your material version") }}</th><td>{{ m.version }}</td></tr>
<tr><th style="text-align:left">{{ _("Current version") }}</th><td>{{ m.current_version }}</td></tr>
<tr><th style="text-align:left">{{ _("Update available") }}</th><td>{{ _("yes") if m.update_available else _("no") }}</td></tr>
<tr><th style="text-align:left">{{ _("A sync would") }}</th><td>{{ m.pending_text }}</td></tr>
<tr><th style="text-align:left">{{ _("Files you edited (always kept)") }}</th><td>{{ m.edited | join(", ") or _("none") }}</td></tr>
</table>
{% if m.message %}<p class="scip-message">{{ m.message }}</p>{% endif %}
{% if m.error %}<p class="scip-error">{{ m.error }}</p>{% endif %}
</div>
"""

COURSE_TITLE = """<b>{{ _("Course %(title)s", title=t) }}</b> (<code>{{ c }}</code>)"""

MESSAGE = """<span class="{{ c }}">{{ t }}</span>"""

TEMPLATES = {
    "error.html": ERROR,
    "status_title.html": STATUS_TITLE,
    "link.html": LINK,
    "cluster_status.html": CLUSTER_STATUS,
    "job_table.html": JOB_TABLE,
    "launcher.html": LAUNCHER,
    "launcher_presets.html": LAUNCHER_PRESETS,
    "course_panel.html": COURSE_PANEL,
    "course_title.html": COURSE_TITLE,
    "message.html": MESSAGE,
}
