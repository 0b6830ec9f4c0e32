"""A real Celery worker standing in for PayScope's, for the tests of the C checks (see ``app`` and ``harness``)."""
