"""Helpers for tests and offline demos: tiny random models and tiny datasets."""
