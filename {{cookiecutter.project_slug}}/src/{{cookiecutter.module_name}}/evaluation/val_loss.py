"""Val loss, measured by eval on the model it has loaded to generate: the mean cross-entropy per
trained token of the val rows (the tokens data/masking.py marks, as the trainer's loss does),
for the base and every checkpoint.

The trainer does not run val passes of its own: eval scores every checkpoint anyway, and one
forward pass over the val rows, in large batches, costs a fraction of the trainer's small-batch
passes (4.3 s against 6.8 s a pass on the demo: docs/decisions.md). Step 0 of the val-loss
curve is the base's value, cached with its generations."""

from collections.abc import Sequence

import torch

from ..data.masking import Encoded

IGNORE = -100  # transformers' ignored label


def cut(encoded: Sequence[Encoded], max_length: int) -> list[Encoded]:
    """Each row cut to `max_length` tokens, as TRL cuts training rows (its start is kept)."""
    return [
        Encoded(row.ids[:max_length], tuple((a, min(b, max_length)) for a, b in row.spans))
        for row in encoded
    ]


def token_batches(lengths: Sequence[int], max_tokens: int) -> list[list[int]]:
    """Row indices, longest first, in batches of at most `max_tokens` padded tokens (at least
    one row each): the logits of a batch (tokens x vocabulary, in float32) stay in memory."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batches: list[list[int]] = []
    for index in order:
        # rows come longest first, so a batch's padded size is its first row's length x rows
        if batches and lengths[batches[-1][0]] * (len(batches[-1]) + 1) <= max_tokens:
            batches[-1].append(index)
        else:
            batches.append([index])
    return batches


def batch_tensors(rows: Sequence[Encoded], pad_id: int) -> tuple[torch.Tensor, ...]:
    """(input ids, attention mask, labels) right-padded: labels are the ids on trained tokens
    and IGNORE elsewhere."""
    width = max(len(row.ids) for row in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    labels = torch.full((len(rows), width), IGNORE, dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, : len(row.ids)] = torch.tensor(row.ids)
        mask[i, : len(row.ids)] = 1
        for start, end in row.spans:
            labels[i, start:end] = ids[i, start:end]
    return ids, mask, labels


@torch.inference_mode()
def val_loss(model, rows: Sequence[Encoded], pad_id: int, max_tokens: int = 2048) -> float | None:
    """Mean cross-entropy per trained token over `rows` (None: no trained token). Each batch's
    loss is the model's own (its loss function: label shift, soft-capping where the family has
    it), summed over the batch's tokens, so the mean does not depend on how rows are batched."""
    total, count = 0.0, 0
    for indices in token_batches([len(row.ids) for row in rows], max_tokens):
        ids, mask, labels = batch_tensors([rows[i] for i in indices], pad_id)
        # a token's label is predicted from the token before it: the first is never one
        tokens = int((labels[:, 1:] != IGNORE).sum())
        if not tokens:
            continue
        device = model.device
        out = model(
            input_ids=ids.to(device),
            attention_mask=mask.to(device),
            labels=labels.to(device),
            num_items_in_batch=tokens,  # the loss is the batch's sum over this
            use_cache=False,
        )
        total += float(out.loss) * tokens
        count += tokens
    return round(total / count, 4) if count else None
