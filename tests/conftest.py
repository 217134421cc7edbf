"""Shared test fixtures: the path to ../shared, and the repository root on sys.path."""
import os
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def shared_dir():
    """The shared/ folder (FCN_SHARED, default ../shared beside the repository), or None."""
    path = Path(os.environ.get('FCN_SHARED', ROOT.parent / 'shared'))
    return path if path.is_dir() else None


def require_shared(*parts):
    """Path under shared/; skips the test when shared/ is absent, fails under CI=true."""
    base = shared_dir()
    if base is None:
        message = ("shared/ not found (set FCN_SHARED or place it beside the repository)")
        if os.environ.get('CI') == 'true':
            pytest.fail(message + "; under CI=true it is required")
        pytest.skip(message)
    path = base.joinpath(*parts)
    if not path.exists():
        pytest.fail(f"{path} is missing from shared/")
    return path


@pytest.fixture
def shared():
    """The shared/ folder as a Path (skip or fail as require_shared)."""
    return require_shared()


def wait_for(predicate, proc, what, timeout=60):
    """Poll ``predicate()`` until true; fail the test if the child ``proc`` exits first or
    ``timeout`` seconds pass (killing it)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"child exited ({proc.returncode}) before {what}:\n{out}\n{err}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.02)
