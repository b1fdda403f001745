"""The production stack started for real (slow: `pytest -m slow`, or `make compose-test`).

Builds the images, brings docker-compose.yml up and checks it end to end: see
deploy/compose_test.py. Its last result is recorded in benchmarks/results/compose.json.
"""
import os
import shutil

import pytest

from deploy.compose_test import failures, run_stack_check

pytestmark = pytest.mark.slow


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("dockerd"),
                    reason="needs root and a Docker engine (bash deploy/install-engine.sh)")
def test_the_stack_turns_posts_into_graph_facts_and_runs_a_dag():
    result = run_stack_check(tag="pytest")
    assert failures(result) == [], result
