"""The performance benchmark of issue 6: `uv run python bench/run.py --scale small`."""
