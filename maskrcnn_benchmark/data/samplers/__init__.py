"""Samplers: deterministic distributed sampler, aspect-ratio grouping, iteration-based batching."""

from .distributed import DistributedSampler
from .grouped_batch_sampler import GroupedBatchSampler
from .iteration_based_batch_sampler import IterationBasedBatchSampler, SampleKey, sample_seed

__all__ = ["DistributedSampler", "GroupedBatchSampler", "IterationBasedBatchSampler", "SampleKey", "sample_seed"]
