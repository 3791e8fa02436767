"""Training notebook 01 in French (notebooks/01-getting-started.fr.ipynb), executed by nbclient like the English one."""

from __future__ import annotations

import nbformat
import pytest

from tests.fixtures.common import ROOT
from tests.notebooks.test_arc_notebook import outputs_text, run_notebook

FRENCH = ROOT / "notebooks" / "01-getting-started.fr.ipynb"
ENGLISH = ROOT / "notebooks" / "01-getting-started.ipynb"


def test_french_notebook_is_stored_clean_and_follows_the_english_one():
    fr, en = nbformat.read(FRENCH, as_version=4), nbformat.read(ENGLISH, as_version=4)
    nbformat.validate(fr)
    assert fr.metadata.kernelspec.name == "python3"
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in fr.cells if c.cell_type == "code")
    assert fr.cells[0].cell_type == "markdown" and "**Objectifs d’apprentissage.**" in fr.cells[0].source
    # the same lesson: every English section has its French one (plus the cell that sets the language)
    assert sum(c.cell_type == "markdown" for c in fr.cells) == sum(c.cell_type == "markdown" for c in en.cells)
    assert sum(c.cell_type == "code" for c in fr.cells) == sum(c.cell_type == "code" for c in en.cells) + 1


@pytest.mark.notebooks
def test_french_notebook_runs_and_speaks_french(artifacts_dir):
    env = {"SCIP_PROFILE": "mig-1g-10gb", "SCIP_PROFILE_KIND": "mig", "SCIP_GPU": "none"}
    nb = run_notebook(FRENCH, env)
    nbformat.write(nb, artifacts_dir / "01-getting-started.fr.executed.ipynb")
    text = outputs_text(nb)
    for words in ("profil : mig-1g-10gb  (type : mig)", "tranche 1g.10gb de H100 (MIG", "calcul sur : cpu",
                  "forme du résultat : (256, 256)", "pas de panneau de cours ici"):
        assert words in text, f"{words!r} not in the outputs:\n{text[-2000:]}"
