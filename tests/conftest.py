"""Fixtures for every test folder."""

import pytest


@pytest.fixture(autouse=True, scope="session")
def _private_cache(tmp_path_factory):
    """slm's cache (extracted document text, hub revisions) goes to a folder of this test
    session's, never the user's ~/.cache/slm. Tests that look at the cache set their own."""
    patch = pytest.MonkeyPatch()
    patch.setenv("SLM_CACHE_DIR", str(tmp_path_factory.mktemp("slm-cache")))
    yield
    patch.undo()
