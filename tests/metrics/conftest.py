"""Fixtures of the metric tests: one intra-op thread, and one shared Avalanche run."""

import pytest
from tiny_runs import classification_run
from tiny_streams import one_thread


@pytest.fixture(autouse=True)
def _one_thread():
    with one_thread():
        yield


@pytest.fixture(scope="session", name="classification_run")
def _classification_run():
    """The run of ``tiny_runs.classification_run``, shared by the tests that inspect it."""
    with one_thread():
        return classification_run()
