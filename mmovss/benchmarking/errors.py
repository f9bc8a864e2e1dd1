"""The error of a benchmark request that cannot be run."""


class BenchmarkError(ValueError):
    """A benchmark request that cannot be run (the message says why)."""
