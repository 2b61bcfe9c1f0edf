"""How many training examples call for which approach: the data-size table curate reports for
the rows it kept and `make advise` for the train split.

The bands are a rule of thumb, not a measurement of this project: under 100 examples, few-shot
prompting usually does as well as fine-tuning (the eval stage's few-shot baseline measures it
on your data); 100-1,000 train a LoRA adapter that starts to overfit within a few epochs, so val
loss picks the checkpoint; 1,000-10,000 is the range where LoRA SFT gains most; from 10,000,
preference tuning (the dpo stage) or full fine-tuning are worth a run against LoRA. Where the
bands come from: docs/decisions.md.
"""


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
