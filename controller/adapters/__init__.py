"""The outside world: Kubernetes, traffic routers, Prometheus, Slack, e-mail, incidents.

Only modules under ``adapters`` import client libraries (kubernetes, prometheus_api_client,
slack_sdk, tenacity); they map third-party exceptions to the project's error taxonomy.
"""
