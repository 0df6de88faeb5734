"""The HTTP API (FastAPI): routes, schemas and RFC 9457 problem responses."""
