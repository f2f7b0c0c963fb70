"""The reference scheduler: one nightly digest pass over the internal HTTP API.

It speaks only the contract in API.md and imports nothing else of this project, so it
can move to a repository of its own unchanged.
"""
