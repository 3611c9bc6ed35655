"""Samplers: seeded distributed sampler, aspect-ratio grouping, iteration-based batching with exact resume."""

import itertools

import pytest
import torch

from maskrcnn_benchmark.data.samplers import (
    DistributedSampler,
    GroupedBatchSampler,
    IterationBasedBatchSampler,
    SampleKey,
)


def test_distributed_sampler_shards_are_disjoint_and_deterministic():
    data = list(range(10))
    shards = [DistributedSampler(data, num_replicas=3, rank=r, seed=5) for r in range(3)]
    for s in shards:
        s.set_epoch(2)
    parts = [list(s) for s in shards]
    assert all(len(p) == 4 for p in parts)  # ceil(10 / 3), padded
    assert set(itertools.chain(*parts)) == set(data)
    again = DistributedSampler(data, num_replicas=3, rank=1, seed=5)
    again.set_epoch(2)
    assert list(again) == parts[1]
    again.set_epoch(3)
    assert list(again) != parts[1]
    assert list(DistributedSampler(data, 1, 0, shuffle=False)) == data
    unpadded = [list(DistributedSampler(data, 3, r, shuffle=False, pad=False)) for r in range(3)]
    assert sorted(itertools.chain(*unpadded)) == data and [len(p) for p in unpadded] == [4, 3, 3]
    assert [len(DistributedSampler(data, 3, r, shuffle=False, pad=False)) for r in range(3)] == [4, 3, 3]
    with pytest.raises(ValueError, match="rank 3"):
        DistributedSampler(data, num_replicas=3, rank=3)


def test_grouped_batches_follow_upstreams_order():
    # Rule (issue 13, upstream maskrcnn_benchmark GroupedBatchSampler): split the drawn indices by group in
    # drawing order, cut each group into batches of batch_size, order the batches by the draw position of
    # their first element. Worked example from the issue: group 0 = [0, 1, 3, 6, 9] -> [0, 1, 3], [6, 9];
    # group 1 = [2, 4, 5, 7, 8] -> [2, 4, 5], [7, 8]; first elements drawn at 0, 2, 6, 7.
    group_ids = [0, 0, 1, 0, 1, 1, 0, 1, 1, 0]
    sampler = list(range(10))
    batches = list(GroupedBatchSampler(sampler, group_ids, 3))
    assert batches == [[0, 1, 3], [2, 4, 5], [6, 9], [7, 8]]
    assert len(GroupedBatchSampler(sampler, group_ids, 3)) == 4
    dropped = list(GroupedBatchSampler(sampler, group_ids, 3, drop_uneven=True))
    assert dropped == [[0, 1, 3], [2, 4, 5]]
    assert len(GroupedBatchSampler(sampler, group_ids, 3, drop_uneven=True)) == 2


def test_grouped_batches_follow_a_shuffled_sampler():
    # the sampler draws 9, 2, 7, 0, 4, 8, 1, 5, 3, 6 (positions 0..9)
    group_ids = [0, 0, 1, 0, 1, 1, 0, 1, 1, 0]
    drawn = [9, 2, 7, 0, 4, 8, 1, 5, 3, 6]
    # batch size 2. group 0 in drawing order: 9, 0, 1, 3, 6 -> [9, 0], [1, 3], [6]
    # group 1 in drawing order: 2, 7, 4, 8, 5 -> [2, 7], [4, 8], [5]
    # first elements drawn at: 9 -> 0, 2 -> 1, 4 -> 4, 1 -> 6, 5 -> 7, 6 -> 9
    assert list(GroupedBatchSampler(drawn, group_ids, 2)) == [[9, 0], [2, 7], [4, 8], [1, 3], [5], [6]]
    assert list(GroupedBatchSampler(drawn, group_ids, 2, drop_uneven=True)) == [[9, 0], [2, 7], [4, 8], [1, 3]]
    # one group only: plain consecutive batches
    assert list(GroupedBatchSampler(drawn, [0] * 10, 4)) == [[9, 2, 7, 0], [4, 8, 1, 5], [3, 6]]
    with pytest.raises(ValueError, match="batch_size must be positive"):
        GroupedBatchSampler(drawn, group_ids, 0)


def test_grouped_batches_are_a_function_of_the_epoch():
    group_ids = [0, 1] * 8
    sampler = DistributedSampler(list(range(16)), 1, 0, shuffle=True, seed=4)
    grouped = GroupedBatchSampler(sampler, group_ids, 3, drop_uneven=True)
    grouped.set_epoch(1)
    first = list(grouped)
    grouped.set_epoch(2)
    second = list(grouped)
    grouped.set_epoch(1)
    assert list(grouped) == first != second
    assert all(len({group_ids[i] for i in b}) == 1 and len(b) == 3 for b in first)
    resumed = list(IterationBasedBatchSampler(GroupedBatchSampler(sampler, group_ids, 3, drop_uneven=True), 9, 5))
    full = list(IterationBasedBatchSampler(GroupedBatchSampler(sampler, group_ids, 3, drop_uneven=True), 9))
    assert resumed == full[5:]


def _iteration_batches(start_iter, num_iterations=11, seed_samples=None):
    sampler = DistributedSampler(list(range(7)), 1, 0, shuffle=True, seed=3)
    batch_sampler = torch.utils.data.BatchSampler(sampler, 2, drop_last=True)
    return list(IterationBasedBatchSampler(batch_sampler, num_iterations, start_iter, seed_samples))


def test_iteration_based_sampler_spans_epochs_and_resumes_exactly():
    full = _iteration_batches(0)
    assert len(full) == 11
    # 3 batches per epoch (7 // 2); each epoch is a new permutation
    assert full[0:3] != full[3:6]
    for start in (1, 3, 7, 10):
        assert _iteration_batches(start) == full[start:]
    assert _iteration_batches(11) == []


def test_iteration_based_sampler_yields_sample_keys_with_stable_seeds():
    keyed = _iteration_batches(0, seed_samples=9)
    assert all(isinstance(k, SampleKey) for b in keyed for k in b)
    plain = _iteration_batches(0)
    assert [[k.index for k in b] for b in keyed] == plain
    assert _iteration_batches(5, seed_samples=9) == keyed[5:]
    seeds = [k.seed for b in keyed for k in b]
    assert len(set(seeds)) == len(seeds)  # same image in another epoch gets another seed


def test_iteration_based_sampler_explains_an_empty_epoch():
    sampler = DistributedSampler(list(range(3)), 1, 0, seed=0)
    batches = torch.utils.data.BatchSampler(sampler, 4, drop_last=True)
    with pytest.raises(ValueError, match="fewer images than one per-process batch"):
        list(IterationBasedBatchSampler(batches, 5))
