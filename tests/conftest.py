"""Shared pytest setup: the real control plane and Prometheus fixtures live in the harness
(tests/harness/fixtures.py, a pytest plugin loaded below), not in the product package.

The tests' servers (Prometheus, probes, Slack and SMTP stand-ins) listen on loopback, which
the egress policy refuses by default: the tests allow it explicitly, through the same
setting a platform admin uses (``ROLLOUTCTL_EGRESS_ALLOW``, inherited by every
``rolloutctl run`` they start), plus ``*`` for any other address the defaults allow.
"""

import os

from tests.harness.egress import LOCAL_EGRESS

os.environ["ROLLOUTCTL_EGRESS_ALLOW"] = LOCAL_EGRESS

pytest_plugins = ["tests.harness.fixtures"]
