"""Whole batches on every rank: an Avalanche data loader without its distributed sampling.

Once a process group exists, Avalanche's loaders (``TaskBalancedDataLoader``,
``ReplayDataLoader``, the evaluation's ``SingleDatasetDataLoader``) give each rank a
``DistributedSampler`` shard. A data-parallel run instead needs every rank to draw the
batches one process draws, from the same random generator in the same order, and to keep
its slice of each (``DataParallelPlugin``): then N ranks train on the batches of a
one-process run, and evaluate the whole test stream as it does. The strategy's
``make_*_dataloader`` and ``ReplayPlugin`` pass no ``distributed_sampling`` argument
through, so the loader they built is rebuilt here with ``distributed_sampling=False``.
"""

from avalanche.benchmarks.utils.data_loader import MultiDatasetDataLoader, ReplayDataLoader


def whole_batches(loader):
    """``loader`` drawing the whole batches of one process on every rank (unchanged if it
    already does, or is a plain ``torch.utils.data.DataLoader``)."""
    if not isinstance(loader, MultiDatasetDataLoader) or not loader.distributed_sampling:
        return loader
    # Which dataset ends an epoch: the replay loader names its own (the current data);
    # every other loader takes the longest, counted again without shards (-1).
    termination = loader.termination_dataset if isinstance(loader, ReplayDataLoader) else -1
    return MultiDatasetDataLoader(
        loader.datasets,
        loader.batch_sizes,
        termination_dataset=termination,
        oversample_small_datasets=loader.oversample_small_datasets,
        distributed_sampling=False,
        never_ending=loader.never_ending,
        **loader.loader_kwargs,
    )
