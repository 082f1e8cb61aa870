"""Handle Gateway: records, ACL and the nox-compatible HTTP surface."""
