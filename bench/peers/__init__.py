"""rolloutctl side by side with Argo Rollouts and Flagger (``python -m bench.peers``)."""
