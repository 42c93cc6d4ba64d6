"""Benchmarks that print numbers; run each as a module from the repository root, e.g.
`.venv/bin/python -m benchmarks.render_bench`."""
