"""HTTP/1.1 clients shared by the SDK, the chain reader and the services (kept alive)."""
