"""Fusion passes: fold linear constant arithmetic into neighbours or merge it."""
