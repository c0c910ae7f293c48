"""Serving stage: a per-user assistant over HTTP."""
