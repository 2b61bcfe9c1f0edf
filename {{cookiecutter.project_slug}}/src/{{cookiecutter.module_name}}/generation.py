"""Batched greedy generation: prompts sorted by length, left padding, stop at end of turn."""

import torch
from tqdm.auto import tqdm

from .formatting import Messages, prompt_token_ids


def stop_token_ids(model, tokenizer) -> list[int]:
    """End-of-turn ids: the tokenizer's eos plus whatever the model's generation config adds."""
    configured = model.generation_config.eos_token_id
    configured = configured if isinstance(configured, list) else [configured]
    return sorted({tokenizer.eos_token_id, *[i for i in configured if i is not None]})


def left_pad(batch: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(ids) for ids in batch)
    input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    attention = torch.zeros((len(batch), width), dtype=torch.long)
    for row, ids in enumerate(batch):
        input_ids[row, width - len(ids) :] = torch.tensor(ids)
        attention[row, width - len(ids) :] = 1
    return input_ids, attention


@torch.inference_mode()
def generate(
    model,
    tokenizer,
    prompts: list[Messages],
    max_new_tokens: int,
    batch_size: int,
    desc: str = "generate",
) -> list[str]:
    """Greedy completions for chat prompts, formatted exactly as in training."""
    encoded = [prompt_token_ids(tokenizer, prompt) for prompt in prompts]
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
    outputs: list[str] = [""] * len(encoded)
    stops = stop_token_ids(model, tokenizer)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else stops[0]
    with tqdm(total=len(order), desc=desc, unit="item", leave=False) as progress:
        for start in range(0, len(order), batch_size):
            indices = order[start : start + batch_size]
            input_ids, attention = left_pad([encoded[i] for i in indices], pad_id)
            generated = model.generate(
                input_ids=input_ids.to(model.device),
                attention_mask=attention.to(model.device),
                max_new_tokens=max_new_tokens,
                do_sample=False,
                eos_token_id=stops,
                pad_token_id=pad_id,
            )
            new_tokens = generated[:, input_ids.shape[1] :]
            for i, tokens in zip(indices, new_tokens, strict=True):
                outputs[i] = tokenizer.decode(tokens, skip_special_tokens=True).strip()
            progress.update(len(indices))
    return outputs
