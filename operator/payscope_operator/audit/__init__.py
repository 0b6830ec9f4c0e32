"""The audit: checks of the production-readiness checklist, their evidence sources, and the runner."""
