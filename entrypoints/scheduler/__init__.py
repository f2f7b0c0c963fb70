"""The reference scheduler: one nightly digest pass over the internal HTTP API.

It speaks only the contract in API.md and imports nothing of this project but itself,
by relative imports, so the package can move to a repository of its own unchanged.
Its dependencies are the standard library, httpx and msgspec.
"""
