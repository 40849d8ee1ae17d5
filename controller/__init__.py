"""rolloutctl: a progressive-rollout controller that releases by SLOs and error budgets."""

__version__ = "0.1.0"
