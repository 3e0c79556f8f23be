"""compress: a staged, gated model-compression and export pipeline for transformer classifiers."""

__version__ = "0.1.0"
