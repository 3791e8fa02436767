"""scip_widgets: notebook-side ipywidgets views over models from scip_jupyter."""
