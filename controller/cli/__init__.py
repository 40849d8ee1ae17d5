"""rolloutctl, the operator's command line."""
