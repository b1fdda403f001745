"""A test that cannot run for want of a tool or data folder skips and says why on a developer's
machine, and fails the run in CI (CI=true, set by .ci/run): green CI must mean the Kafka, Neo4j,
browser and real-data tests ran. Checked by running pytest itself on a test that needs a missing folder."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parents[1]
NEEDS_MISSING_DATA = '''
from pathlib import Path
from helpers import unavailable

def test_needs_data():
    path = Path("/nonexistent/shared/data")
    if not path.exists():
        unavailable(f"real data missing: {path}")
'''


@pytest.mark.parametrize("ci, outcome", [("true", "1 failed"), ("", "1 skipped")])
def test_a_missing_data_folder_fails_in_ci_and_skips_elsewhere(tmp_path, ci, outcome):
    (tmp_path / "test_needs.py").write_text(NEEDS_MISSING_DATA)
    env = {"PATH": "/usr/bin:/bin", "CI": ci, "PYTHONPATH": f"{TESTS}:{TESTS.parent}"}
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", "-o", "addopts=",
                           "--rootdir", str(tmp_path), str(tmp_path / "test_needs.py")],
                          capture_output=True, text=True, env=env, timeout=120)
    assert outcome in proc.stdout, proc.stdout[-2000:]
    assert "real data missing: /nonexistent/shared/data" in proc.stdout
    assert proc.returncode == (1 if ci else 0)
