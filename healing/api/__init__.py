"""The self-healing REST API: thin views over healing and notification services."""
