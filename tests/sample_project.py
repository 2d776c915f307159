"""The second sample project: the tutorial's flat project deployed beside the example app."""

from __future__ import annotations

from pathlib import Path

SAMPLES = Path(__file__).resolve().parent / "sample_projects"
PROJECT = SAMPLES / "tutorial_flat"
# Its deployment variables (ansible-playbook app.yml -e @DEFINITION).
DEFINITION = SAMPLES / "tutorial_flat.yml"
