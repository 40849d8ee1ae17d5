"""Pure decisions: observation (plan, status, measurements, now) -> decision.

No I/O, no clock reads, no client libraries: the same engine runs the controller, the
simulator and the tests.
"""

from controller.engine.decide import decide, gates_due, record_results
from controller.engine.observation import Decision, Observation

__all__ = ["Decision", "Observation", "decide", "gates_due", "record_results"]
