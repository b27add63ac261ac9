"""A pass over a dataset in its own order that leaves the global random stream alone.

A ``DataLoader`` draws a base seed for its workers from torch's global generator every
time it is iterated, shuffled or not (``torch.empty((), dtype=torch.int64).random_()`` in
``_BaseDataLoaderIter``). A pass that only reads (a selector's statistics, a Fisher, a
score) would then move every later draw of the run, so a run with a stage selector would
train on other shuffles than the same run without one. Its own generator keeps that draw
out of the run's stream.
"""

import torch
from torch.utils.data import DataLoader, Dataset


def in_order(dataset: Dataset, batch_size: int) -> DataLoader:
    """Minibatches of ``dataset`` in its order, collated by its own ``collate_fn`` if it
    has one, drawing nothing from the global random generator."""
    return DataLoader(
        dataset,
        batch_size=batch_size,
        collate_fn=getattr(dataset, "collate_fn", None),
        generator=torch.Generator(),  # the workers' base seed comes from here, not global
    )
