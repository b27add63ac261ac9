"""Avalanche's classic benchmarks, read by the real loading code from files the tests write."""

import math
import socket

import numpy as np
import pytest
import torch
from torchvision.datasets import MNIST

from lifelong.data import DataError, build_stream


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a data test tried to reach the network")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)


@pytest.mark.parametrize("compress", [True, False])
def test_split_mnist_from_idx_files(tmp_path, mnist_writer, compress):
    labels = mnist_writer(tmp_path, compress=compress)
    per_class = {split: int((y == 0).sum()) for split, y in labels.items()}
    spec = build_stream("avalanche", name="SplitMNIST", dataset_root=str(tmp_path))
    assert (spec.task, spec.scenario, spec.input_shape, spec.num_classes) == (
        "classification",
        "class-il",
        (1, 28, 28),
        10,
    )
    train, test = spec.benchmark.train_stream, spec.benchmark.test_stream
    assert len(train) == len(test) == 5
    seen = set()
    for exp_train, exp_test, name in zip(train, test, spec.experience_names, strict=True):
        classes = set(exp_train.classes_in_this_experience)
        assert len(classes) == 2 and set(exp_test.classes_in_this_experience) == classes
        assert name.startswith("classes ")
        assert len(exp_train.dataset) == 2 * per_class["train"]
        assert len(exp_test.dataset) == 2 * per_class["t10k"]
        assert exp_train.task_label == 0
        x, y, t = exp_train.dataset[0]
        # The file's pixels (10 * label) / 255, normalised by Avalanche's MNIST transform.
        expected = (10 * y / 255 - 0.1307) / 0.3081
        assert x.shape == (1, 28, 28) and torch.allclose(x, torch.full_like(x, expected))
        seen |= classes
    assert seen == set(labels["train"].tolist())


def test_split_mnist_task_labels_and_permuted_mnist(tiny_mnist_root):
    split = build_stream(
        "avalanche", name="SplitMNIST", dataset_root=str(tiny_mnist_root), return_task_id=True
    )
    assert split.scenario == "task-il"
    assert [e.task_label for e in split.benchmark.test_stream] == [0, 1, 2, 3, 4]
    perm = build_stream(
        "avalanche", name="PermutedMNIST", dataset_root=str(tiny_mnist_root), n_experiences=2
    )
    assert perm.scenario == "domain-il" and perm.experience_names == [
        "permutation 0",
        "permutation 1",
    ]
    for exp in perm.benchmark.train_stream:
        assert set(exp.classes_in_this_experience) == set(range(10))
    x0 = perm.benchmark.train_stream[0].dataset[0][0]
    x1 = perm.benchmark.train_stream[1].dataset[0][0]
    assert x0.shape == x1.shape == (1, 28, 28)


def test_missing_mnist_is_a_data_error(tmp_path):
    with pytest.raises(
        DataError,
        match=r"MNIST not found under dataset_root='.*nothing' and it cannot be downloaded "
        r"here: place the files there .* or allow download=True",
    ):
        build_stream("avalanche", name="SplitMNIST", dataset_root=str(tmp_path / "nothing"))
    with pytest.raises(DataError, match="MNIST not found"):
        build_stream("avalanche", name="PermutedMNIST", dataset_root=str(tmp_path))


def test_failed_download_is_a_data_error(tmp_path, monkeypatch):
    def fail(self):
        raise RuntimeError("Error downloading train-images-idx3-ubyte.gz")

    monkeypatch.setattr(MNIST, "download", fail)  # what torchvision raises with no network
    with pytest.raises(DataError, match="SplitMNIST could not be loaded or downloaded into"):
        build_stream("avalanche", name="SplitMNIST", dataset_root=str(tmp_path), download=True)


def test_cifar100_missing_or_corrupt(tmp_path):
    with pytest.raises(DataError, match="CIFAR100 not found under dataset_root=.*download=True"):
        build_stream("avalanche", name="SplitCIFAR100", dataset_root=str(tmp_path))
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    for name in ("train", "test", "meta"):
        (folder / name).write_bytes(b"not a pickle")
    with pytest.raises(DataError, match="do not match their published MD5 sums"):
        build_stream("avalanche", name="SplitCIFAR100", dataset_root=str(tmp_path))


def test_classic_option_errors(tiny_mnist_root):
    with pytest.raises(DataError, match="name='MNIST' is not supported; choose one of"):
        build_stream("avalanche", name="MNIST", dataset_root=str(tiny_mnist_root))
    with pytest.raises(DataError, match="cannot split 10 classes into n_experiences=3"):
        build_stream(
            "avalanche", name="SplitMNIST", dataset_root=str(tiny_mnist_root), n_experiences=3
        )


def test_validation_scores_held_out_training_images_only(tmp_path, mnist_writer, idx_writer):
    """validation=True: each experience's test set is part of its training images (the
    test images, written here as all-white, are never scored), disjoint from what trains."""
    labels = mnist_writer(tmp_path, compress=False)
    raw = tmp_path / "MNIST" / "raw"
    white = np.full((len(labels["t10k"]), 28, 28), 255)
    idx_writer(raw / "t10k-images-idx3-ubyte", white, compress=False)
    per_experience = 2 * int((labels["train"] == 0).sum())  # two classes per experience

    def draw(seed):
        spec = build_stream(
            "avalanche", name="SplitMNIST", dataset_root=str(tmp_path), validation=True, seed=seed
        )
        return list(zip(spec.benchmark.train_stream, spec.benchmark.test_stream, strict=True))

    held_labels = []
    for train, held in draw(0):
        assert len(train.dataset) + len(held.dataset) == per_experience
        assert len(held.dataset) == math.ceil(0.2 * per_experience)
        for x, y, _ in held.dataset:  # a training image: pixels 10 * label, not white
            assert torch.allclose(x, torch.full_like(x, (10 * y / 255 - 0.1307) / 0.3081))
        assert set(held.classes_in_this_experience) <= set(train.classes_in_this_experience)
        held_labels.append([int(y) for _, y, _ in held.dataset])
    again = [[int(y) for _, y, _ in h.dataset] for _, h in draw(0)]
    other = [[int(y) for _, y, _ in h.dataset] for _, h in draw(3)]
    assert again == held_labels and other != held_labels
