"""rolloutctl's tests and their harness (``tests.harness``); never part of the wheel."""
