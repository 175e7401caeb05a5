"""Workflows built on the engine: pair files, evaluation, exact-model fine-tuning, corpus analysis."""
