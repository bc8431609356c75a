"""The one-command benchmark suite (`python -m bench`); see docs/performance.md for what it measures."""
