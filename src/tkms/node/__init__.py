"""The KMS node service: HTTP routes, configuration and key storage; thin."""
