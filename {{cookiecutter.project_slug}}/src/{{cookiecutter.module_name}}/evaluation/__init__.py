"""Evaluation: batched generation, its cache, the eval suites, scorers and the per-model
reports eval and select share."""
