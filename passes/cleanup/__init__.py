"""Cleanup passes: dead-code elimination and constant folding."""
