"""HTTP plumbing shared by the node and the gateway: errors, limits, metrics."""
