"""Data: row formats and schemas, quality filters, deduplication, curation, splitting and
the contamination check."""
