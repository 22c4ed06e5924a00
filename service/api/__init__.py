"""The HTTP and WebSocket API: routers, dependencies, response models and middleware."""
