"""The HTTP surface of omnidesk (FastAPI)."""
