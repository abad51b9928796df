"""Pytest fixtures around ``tests/hub_server.LocalHub`` (kept out of ``conftest.py`` on purpose).

Use them either by importing the fixtures into a test module::

    from conftest_hub import local_hub, hub_env  # noqa: F401  (or: from tests.conftest_hub import ...)

or, for the whole suite, from the top-level ``tests/conftest.py``::

    pytest_plugins = ["conftest_hub"]  # "tests.conftest_hub" when tests/ is a package

About ``HF_*`` variables: ``huggingface_hub`` copies them into ``huggingface_hub.constants`` once, at
import.  This module sets ``HF_HUB_DISABLE_XET=1`` (and disables telemetry / implicit token) in
``os.environ`` before importing anything from the client, which only helps if it is imported before
``huggingface_hub`` is (hence: load it early, e.g. via ``pytest_plugins`` in ``tests/conftest.py``).
That is not required for correctness, though: in 2.4.x every reader uses
``constants.HF_HUB_DISABLE_XET`` (likewise ``HF_HUB_OFFLINE``, ``HF_HUB_CACHE``, ``HF_TOKEN_PATH``) at
call time, so the ``hub_env`` fixture patches those constants with ``monkeypatch`` and works whatever
the import order.  ``HF_ENDPOINT`` is NOT patched: pass ``endpoint=hub.endpoint`` to ``HfApi``,
``hf_hub_download`` and ``snapshot_download``.

Xet is disabled here for the plain client, which LocalHub cannot serve over Xet.  zoo itself does
not need it: its pushes and pulls take the HTTP / git-LFS path whatever the setting (docs/HUB.md),
and ``tests/test_hub_faults.py::test_a_users_xet_setting_breaks_neither_push_nor_pull`` runs zoo in
a fresh interpreter with ``hf_xet`` installed and ``HF_HUB_DISABLE_XET`` unset.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_DISABLE_XET", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

import pytest  # noqa: E402

try:  # imported as tests.conftest_hub (package / rootdir on sys.path)
    from .hub_server import LocalHub
except ImportError:  # imported as a top-level module (tests/ on sys.path)
    from hub_server import LocalHub

HUB_TOKEN = "hf_local_test_token"


@pytest.fixture
def hub_env(monkeypatch, tmp_path_factory):
    """Isolate the huggingface_hub client for one test: Xet off, no ambient token, private cache.

    Yields the cache directory (also installed as the client's default ``HF_HUB_CACHE``).
    """
    from huggingface_hub import constants

    home = tmp_path_factory.mktemp("hf_home")
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_IMPLICIT_TOKEN", False)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(home / "hub"))
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(home / "token"))
    monkeypatch.setattr(constants, "HF_STORED_TOKENS_PATH", str(home / "stored_tokens"))
    for var in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_HUB_OFFLINE", "HF_ENDPOINT"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HF_HUB_DISABLE_XET", "1")
    yield home / "hub"


@pytest.fixture
def local_hub(tmp_path_factory, hub_env):
    """A started ``LocalHub`` without auth (any client token is accepted)."""
    with LocalHub(tmp_path_factory.mktemp("local_hub")) as hub:
        yield hub
    _check_no_server_errors(hub)


@pytest.fixture
def local_hub_auth(tmp_path_factory, hub_env):
    """A started ``LocalHub`` that requires ``Authorization: Bearer HUB_TOKEN`` for writes."""
    with LocalHub(tmp_path_factory.mktemp("local_hub"), token=HUB_TOKEN) as hub:
        yield hub
    _check_no_server_errors(hub)


def _check_no_server_errors(hub: LocalHub) -> None:
    """Fail the test at teardown when the server itself crashed on a request (answered 500)."""
    if hub.errors:
        raise AssertionError(f"LocalHub raised while serving requests: {hub.errors!r}")
