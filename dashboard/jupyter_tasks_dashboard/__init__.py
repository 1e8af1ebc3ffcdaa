"""The jupyter-tasks terminal dashboard (Textual)."""
