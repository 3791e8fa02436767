"""Courses as a unit (see docs/courses.md).

registry.py (courses.yaml) -> material.py (snapshots, versions) -> sync.py (pure plan + apply,
never loses student edits) -> progress.py (a student's status) -> student.py (the student's side,
used by the server extension and the panel) / ops.py + runas.py + cli.py (instructor and operator
verbs) -> hub.py + launch.py + service.py + view.py (JupyterHub groups, roles, launch links,
instructor view) -> panel.py (the course panel's model; the view is scip_widgets.course_panel).
"""
