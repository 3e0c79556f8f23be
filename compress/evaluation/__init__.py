"""Measuring models: an artifact on the test split (metrics' inputs, latency, size), two models
against each other at batch x sequence shapes, and export parity. Runs models; judges nothing."""
