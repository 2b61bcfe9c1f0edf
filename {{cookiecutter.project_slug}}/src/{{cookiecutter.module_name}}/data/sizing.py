"""The seeds' data-size table (seed 001): how many examples call for which approach. curate
reports it for the rows it kept; `make advise` for the train split."""


def size_verdict(rows: int) -> tuple[str, str]:
    """(verdict code, advice) for `rows` training examples."""
    if rows < 100:
        return "few-shot", (
            f"{rows} rows (<100): use few-shot prompting instead of fine-tuning "
            "(the eval stage's few-shot baseline shows how far prompting gets)"
        )
    if rows < 1000:
        return "lora-watch-overfitting", (
            f"{rows} rows (100-1,000): LoRA SFT works; watch val loss for overfitting"
        )
    if rows < 10000:
        return "lora-optimal", f"{rows} rows (1,000-10,000): the optimal range for LoRA SFT"
    return "sft-dpo-or-full", f"{rows} rows (10,000+): SFT + DPO, or consider full fine-tuning"
