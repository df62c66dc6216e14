"""Preprocessing passes: embed mean/scale/channel reversal into a model."""
