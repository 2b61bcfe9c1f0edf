"""Batch order that a resumed run reproduces: `group_by_length` batches seeded by (seed,
epoch) instead of the global RNG."""

import torch
from transformers.trainer_pt_utils import LengthGroupedSampler


class EpochSeededLengthGroupedSampler(LengthGroupedSampler):
    """A LengthGroupedSampler whose order depends only on the seed and the epoch (the Trainer
    calls `set_epoch` before it iterates)."""

    def __init__(self, batch_size: int, lengths: list[int], seed: int):
        super().__init__(batch_size, lengths=lengths)
        self.seed = seed
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        self.generator = torch.Generator().manual_seed(self.seed + epoch)


class ResumableLengthGrouping:
    """Trainer mixin: `group_by_length` batches in an order that a resumed run reproduces.
    transformers' LengthGroupedSampler draws from the global RNG, whose state differs after a
    resume, so the resumed run would train on other batches than the uninterrupted one
    (tests/test_resume.py catches that)."""

    def _get_train_sampler(self, train_dataset=None):
        sampler = super()._get_train_sampler(train_dataset)
        if type(sampler) is not LengthGroupedSampler:
            return sampler
        seed = self.args.data_seed if self.args.data_seed is not None else self.args.seed
        self._epoch_sampler = EpochSeededLengthGroupedSampler(
            sampler.batch_size, sampler.lengths, seed
        )
        return self._epoch_sampler

    def _run_epoch(self, *args, epoch: int, **kwargs):
        # accelerate's set_epoch does not reach a sampler under BatchSamplerShard (DDP) once
        # skip_first_batches has wrapped it (the resumed epoch), so set the epoch here
        sampler = getattr(self, "_epoch_sampler", None)
        if sampler is not None:
            sampler.set_epoch(epoch)
        return super()._run_epoch(*args, epoch=epoch, **kwargs)
