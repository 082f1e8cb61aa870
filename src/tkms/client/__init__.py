"""The SDK a user or a compute runner imports."""
