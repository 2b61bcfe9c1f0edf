"""Batched greedy generation for eval.

A request is a prompt's token ids (formatted by `formatting.prompt_token_ids`, exactly as in
training) and its own token budget, so suites with different `max_new_tokens` share batches.
Backends: `HFGenerator` (transformers, CPU or GPU, the default) and `VLLMGenerator` (the
`vllm` extra, CUDA only). Both are plain callables `requests -> texts`, which is also all a
test needs to fake.
"""

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

MIN_SHARED_PREFIX = 8
"""Shorter common prefixes are recomputed per row: sharing them saves less than the copy."""


@dataclass(frozen=True)
class Request:
    prompt_ids: tuple[int, ...]
    max_new_tokens: int


Generator = Callable[[Sequence[Request], str], list[str]]


def stop_token_ids(generation_config, tokenizer) -> list[int]:
    """End-of-turn ids: the tokenizer's eos plus whatever the model's generation config adds."""
    configured = generation_config.eos_token_id
    configured = configured if isinstance(configured, list) else [configured]
    return sorted({tokenizer.eos_token_id, *[i for i in configured if i is not None]})


def left_pad(batch: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(ids) for ids in batch)
    input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    attention = torch.zeros((len(batch), width), dtype=torch.long)
    for row, ids in enumerate(batch):
        input_ids[row, width - len(ids) :] = torch.tensor(ids)
        attention[row, width - len(ids) :] = 1
    return input_ids, attention


def shared_prefix_length(batch: Sequence[Sequence[int]]) -> int:
    """Tokens every prompt starts with, leaving each at least one token of its own (the
    model must see a fresh token to produce the first logits)."""
    limit = min(len(ids) for ids in batch) - 1
    first = batch[0]
    length = 0
    while length < limit and all(ids[length] == first[length] for ids in batch):
        length += 1
    return length


def batches_by_length(requests: Sequence[Request], batch_size: int) -> list[list[int]]:
    """Indices grouped into batches of similar prompt length (less padding)."""
    order = sorted(range(len(requests)), key=lambda i: len(requests[i].prompt_ids))
    return [order[start : start + batch_size] for start in range(0, len(order), batch_size)]


@torch.inference_mode()
def greedy_decode(
    model,
    input_ids: torch.Tensor,
    attention: torch.Tensor,
    past,
    budgets: list[int],
    stops: list[int],
) -> list[list[int]]:
    """Greedy decoding that drops a row from the batch as soon as it ends (a stop token or
    its own budget), so short answers stop costing compute; `past` may already hold the
    first `input_ids.shape[1] - new` positions (a shared prefix).

    Pure argmax: sampling and penalty settings in the model's generation config are ignored
    on purpose, so scores are deterministic and comparable across models."""
    from transformers import DynamicCache

    device = model.device
    past = past if past is not None else DynamicCache(config=model.config)
    attention = attention.to(device)
    positions = (attention.cumsum(-1) - 1).clamp(min=0)
    cached = past.get_seq_length()
    logits = model(
        input_ids=input_ids[:, cached:].to(device),
        attention_mask=attention,
        position_ids=positions[:, cached:],
        past_key_values=past,
        logits_to_keep=1,
    ).logits
    budget = torch.tensor(budgets, device=device)
    stop = torch.tensor(stops, device=device)
    alive = torch.arange(len(budgets), device=device)
    position = positions[:, -1]
    generated: list[list[int]] = [[] for _ in budgets]
    for step in range(1, max(budgets) + 1):
        tokens = logits[:, -1].argmax(-1)
        for row, token in zip(alive.tolist(), tokens.tolist(), strict=True):
            generated[row].append(token)
        running = ~torch.isin(tokens, stop) & (budget[alive] > step)
        if not running.any():
            break
        if not running.all():
            keep = running.nonzero().squeeze(1)
            past.batch_select_indices(keep)
            alive, tokens = alive[keep], tokens[keep]
            attention, position = attention[keep], position[keep]
        attention = torch.cat([attention, attention.new_ones((len(alive), 1))], dim=1)
        position = position + 1
        logits = model(
            input_ids=tokens[:, None],
            attention_mask=attention,
            position_ids=position[:, None],
            past_key_values=past,
        ).logits
    return generated


class HFGenerator:
    """Greedy decoding with transformers over length-sorted, left-padded batches. A prefix
    shared by a whole batch (the system prompt, few-shot examples) is run once and its KV
    cache copied to every row; the rows' own tokens follow it, padded in between (masked)."""

    name = "hf"

    def __init__(self, model, tokenizer, batch_size: int):
        self.model = model
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self.stops = stop_token_ids(model.generation_config, tokenizer)
        pad = tokenizer.pad_token_id
        self.pad_id = pad if pad is not None else self.stops[0]
        self._prefix: tuple[tuple[int, ...], object] | None = None

    def __call__(self, requests: Sequence[Request], desc: str = "generate") -> list[str]:
        return [self.decode(tokens) for tokens in self.token_ids(requests, desc)]

    def decode(self, tokens: Sequence[int]) -> str:
        return self.tokenizer.decode(tokens, skip_special_tokens=True).strip()

    @torch.inference_mode()
    def token_ids(self, requests: Sequence[Request], desc: str = "generate") -> list[list[int]]:
        """The generated ids of every request, in order (a stop token, if reached, last)."""
        outputs: list[list[int]] = [[] for _ in requests]
        with tqdm(total=len(requests), desc=desc, unit="item", leave=False) as progress:
            for indices in batches_by_length(requests, self.batch_size):
                generated = self.generate_batch([requests[i] for i in indices])
                for i, tokens in zip(indices, generated, strict=True):
                    outputs[i] = tokens
                progress.update(len(indices))
        return outputs

    def prefix_cache(self, prefix: tuple[int, ...]):
        """KV cache of `prefix` (the last one is kept: batches of a suite share it)."""
        if self._prefix is None or self._prefix[0] != prefix:
            from transformers import DynamicCache

            cache = DynamicCache(config=self.model.config)
            ids = torch.tensor([prefix], device=self.model.device)
            self.model(input_ids=ids, past_key_values=cache, use_cache=True, logits_to_keep=1)
            self._prefix = (prefix, cache)
        return self._prefix[1]

    def batch_inputs(self, prompts: Sequence[Sequence[int]]) -> tuple[torch.Tensor, ...]:
        """(input ids, attention mask, shared prefix length): the shared prefix, then each
        row's own tokens left-padded."""
        shared = shared_prefix_length(prompts) if len(prompts) > 1 else 0
        shared = shared if shared >= MIN_SHARED_PREFIX else 0
        suffix_ids, suffix_mask = left_pad([ids[shared:] for ids in prompts], self.pad_id)
        prefix = torch.tensor([list(prompts[0][:shared])] * len(prompts), dtype=torch.long)
        prefix = prefix.reshape(len(prompts), shared)
        input_ids = torch.cat([prefix, suffix_ids], dim=1)
        return input_ids, torch.cat([torch.ones_like(prefix), suffix_mask], dim=1), shared

    def batch_cache(self, prompts: Sequence[Sequence[int]], shared: int):
        """A copy of the shared prefix's KV cache for every row (None without a prefix)."""
        if not shared:
            return None
        past = copy.deepcopy(self.prefix_cache(tuple(prompts[0][:shared])))
        past.batch_repeat_interleave(len(prompts))
        return past

    def generate_batch(self, batch: Sequence[Request]) -> list[list[int]]:
        prompts = [request.prompt_ids for request in batch]
        input_ids, attention, shared = self.batch_inputs(prompts)
        past = self.batch_cache(prompts, shared)
        budgets = [request.max_new_tokens for request in batch]
        return greedy_decode(self.model, input_ids, attention, past, budgets, self.stops)


def vllm_engine_args(base_dir: Path, max_lora_rank: int = 64) -> dict:
    """vLLM's engine arguments for the base: the materialised dir, or a hub id at the revision
    models/base/manifest.json pins (weights and tokenizer), with LoRA enabled."""
    from ..models.loading import base_source

    source, extra = base_source(base_dir)
    revision = extra.get("revision")
    return {
        "model": source,
        **({"revision": revision, "tokenizer_revision": revision} if revision else {}),
        "enable_lora": True,
        "max_lora_rank": max_lora_rank,
        "trust_remote_code": False,
        "seed": 0,
    }


def base_generation_config(base_dir: Path):
    """The base model's generation config (its end-of-turn ids), from where the base lives."""
    from transformers import GenerationConfig

    from ..models.loading import base_source

    source, extra = base_source(base_dir)
    return GenerationConfig.from_pretrained(source, **extra)


class VLLMGenerator:
    """vLLM on CUDA: the base model loaded once, LoRA checkpoints applied per request set."""

    name = "vllm"

    def __init__(self, base_dir: Path, stops: list[int], max_lora_rank: int = 64):
        from vllm import LLM

        self.llm = LLM(**vllm_engine_args(base_dir, max_lora_rank))
        self.stops = stops
        self.adapter: tuple[str, int, str] | None = None

    def use_adapter(self, checkpoint: Path | None, adapter_id: int) -> None:
        self.adapter = (
            None if checkpoint is None else (checkpoint.name, adapter_id, str(checkpoint))
        )

    def __call__(self, requests: Sequence[Request], desc: str = "generate") -> list[str]:
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt
        from vllm.lora.request import LoRARequest

        sampling = [
            SamplingParams(temperature=0.0, max_tokens=r.max_new_tokens, stop_token_ids=self.stops)
            for r in requests
        ]
        prompts = [TokensPrompt(prompt_token_ids=list(r.prompt_ids)) for r in requests]
        lora = LoRARequest(*self.adapter) if self.adapter else None
        results = self.llm.generate(prompts, sampling, lora_request=lora, use_tqdm=True)
        return [result.outputs[0].text.strip() for result in results]
