"""Selection: guardrails, the failure-mode diagnosis, the report, the model card and the
export of the chosen checkpoint."""
