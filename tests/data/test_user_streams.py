import pytest
import torch
from avalanche.benchmarks.scenarios.dataset_scenario import benchmark_from_datasets
from avalanche.benchmarks.utils import _make_taskaware_tensor_classification_dataset
from torch.utils.data import Dataset, TensorDataset

from lifelong.data import DataError, build_stream, from_benchmark


def pair(n: int, classes: list[int], shape=(3, 4)):
    y = torch.tensor(classes).repeat(n)  # (n * len(classes),)
    return torch.randn(len(y), *shape), y


def two_experiences():
    return [pair(4, [0, 1]), pair(4, [2, 3, 4])], [pair(2, [0, 1]), pair(2, [2, 3, 4])]


def test_tensors_stream():
    train, test = two_experiences()
    spec = build_stream("tensors", train=train, test=test)
    assert (spec.task, spec.scenario, spec.input_shape, spec.num_classes) == (
        "classification",
        "class-il",
        (3, 4),
        5,
    )
    assert spec.experience_names == ["classes 0-1", "classes 2-4"]
    exp = spec.benchmark.train_stream[1]
    assert set(exp.classes_in_this_experience) == {2, 3, 4} and exp.task_label == 0
    x, y, t = exp.dataset[0]
    assert torch.equal(x, train[1][0][0]) and y == int(train[1][1][0]) and t == 0
    assert len(spec.benchmark.test_stream[0].dataset) == 4


def test_tensors_task_labels():
    train, test = two_experiences()
    task_il = build_stream("tensors", train=train, test=test, scenario="task-il")
    assert [e.task_label for e in task_il.benchmark.test_stream] == [0, 1]
    given = build_stream("tensors", train=train, test=test, task_labels=[3, 5])
    assert [e.task_label for e in given.benchmark.train_stream] == [3, 5]


def test_tensors_from_files(tmp_path):
    """A config can only name files: train and test may be paths of torch.save'd pairs."""
    train, test = two_experiences()
    torch.save(train, tmp_path / "train.pt")
    torch.save(test, tmp_path / "test.pt")
    spec = build_stream("tensors", train=str(tmp_path / "train.pt"), test=tmp_path / "test.pt")
    x, y, _ = spec.benchmark.train_stream[1].dataset[0]
    assert torch.equal(x, train[1][0][0]) and y == int(train[1][1][0])
    (tmp_path / "junk.pt").write_text("not a torch file")
    with pytest.raises(DataError, match=r"test file '.*junk.pt' cannot be read as tensors"):
        build_stream("tensors", train=train, test=str(tmp_path / "junk.pt"))


def test_tensors_errors():
    train, test = two_experiences()
    with pytest.raises(DataError, match="train has 2 experiences but test has 1"):
        build_stream("tensors", train=train, test=test[:1])
    empty = [train[0], (torch.zeros(0, 3, 4), torch.zeros(0, dtype=torch.long))]
    with pytest.raises(DataError, match="train experience 1 has no samples"):
        build_stream("tensors", train=empty, test=test)
    with pytest.raises(DataError, match=r"test experience 0 needs y as 4 integer class ids"):
        build_stream("tensors", train=train, test=[(test[0][0], test[0][1].float()), test[1]])
    with pytest.raises(DataError, match=r"has samples of shape \(5,\), others \(3, 4\)"):
        build_stream("tensors", train=[train[0], pair(2, [2], shape=(5,))], test=test)
    with pytest.raises(DataError, match="task_labels must be 2 non-negative integers"):
        build_stream("tensors", train=train, test=test, task_labels=[0])
    with pytest.raises(DataError, match=r"train experience 0 must be an \(x, y\) pair"):
        build_stream("tensors", train=[train[0][0], train[1]], test=test)
    with pytest.raises(DataError, match="train is empty"):
        build_stream("tensors", train=[], test=[])


class Labelled(Dataset):
    """A map-style dataset with a `targets` list, as torchvision datasets have."""

    def __init__(self, x, y):
        self.x, self.targets = x, y.tolist()

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return self.x[i], self.targets[i]


def test_datasets_stream():
    train, test = two_experiences()
    spec = build_stream(
        "datasets",
        train=[TensorDataset(*train[0]), Labelled(*train[1])],
        test=[TensorDataset(*test[0]), Labelled(*test[1])],
        scenario="task-il",
    )
    assert spec.input_shape == (3, 4) and spec.num_classes == 5
    assert spec.experience_names == ["classes 0-1", "classes 2-4"]
    exps = list(spec.benchmark.train_stream)
    assert [set(e.classes_in_this_experience) for e in exps] == [{0, 1}, {2, 3, 4}]
    assert [e.task_label for e in exps] == [0, 1]
    x, y, t = exps[1].dataset[0]
    assert torch.equal(x, train[1][0][0]) and int(y) == int(train[1][1][0]) and t == 1


def test_datasets_errors():
    train, test = two_experiences()
    full = [TensorDataset(*p) for p in train]
    with pytest.raises(DataError, match="test experience 1 has no samples"):
        build_stream("datasets", train=full, test=[full[0], TensorDataset(torch.zeros(0, 3, 4))])
    with pytest.raises(DataError, match="train has 2 experiences but test has 1"):
        build_stream("datasets", train=full, test=full[:1])
    with pytest.raises(DataError, match="must yield \\(x, y\\) samples"):
        build_stream("datasets", train=[torch.randn(3, 2)], test=[torch.randn(3, 2)])


def test_from_benchmark_adds_task_labels_and_classes():
    def experience(t, classes):
        x, y = pair(3, classes)
        return _make_taskaware_tensor_classification_dataset(x, y, task_labels=t)

    plain = benchmark_from_datasets(
        train=[experience(0, [0, 1]), experience(1, [2, 3])],
        test=[experience(0, [0, 1]), experience(1, [2, 3])],
    )
    spec = from_benchmark(plain)
    assert spec.scenario == "task-il" and spec.num_classes == 4 and spec.input_shape == (3, 4)
    assert [e.task_label for e in spec.benchmark.test_stream] == [0, 1]
    assert [set(e.classes_in_this_experience) for e in spec.benchmark.train_stream] == [
        {0, 1},
        {2, 3},
    ]
    same_classes = benchmark_from_datasets(
        train=[experience(0, [0, 1]), experience(0, [0, 1])],
        test=[experience(0, [0, 1]), experience(0, [0, 1])],
    )
    assert from_benchmark(same_classes).scenario == "domain-il"
    named = from_benchmark(plain, scenario="class-il", experience_names=["first", "second"])
    assert named.scenario == "class-il" and named.experience_names == ["first", "second"]


def test_from_benchmark_errors():
    spec = build_stream("split_digits", n_experiences=2)
    with pytest.raises(DataError, match="Tensor is not an Avalanche benchmark"):
        from_benchmark(torch.zeros(1))
    with pytest.raises(DataError, match="experience_names has 1 entries for 2 experiences"):
        from_benchmark(spec.benchmark, experience_names=["x"])
    with pytest.raises(DataError, match="task='image' is not supported"):
        from_benchmark(spec.benchmark, task="image")
    train = [e.dataset for e in spec.benchmark.train_stream]
    uneven = benchmark_from_datasets(train=train, test=train[:1])
    with pytest.raises(DataError, match="has 2 train and 1 test experiences; it needs the same"):
        from_benchmark(uneven)


def test_from_benchmark_language_modelling(tmp_path):
    # Distinct lines: a text of one repeated period has no test window unseen in training.
    (tmp_path / "a.txt").write_text("".join(f"line {i} of abc\n" for i in range(400)))
    text = build_stream("text_files", paths=[str(tmp_path / "a.txt")], seq_len=12)
    spec = from_benchmark(text.benchmark, task="lm")
    assert (spec.scenario, spec.input_shape, spec.num_classes) == ("lm", (12,), 256)
    assert spec.experience_names == ["experience 0"]


def test_domain_names_keep_their_dots(tmp_path):
    from lifelong.data.text import domain_name

    for file, name in [
        ("Apache-2.0", "Apache-2.0"),  # a version, not a file type
        ("notes.txt.gz", "notes"),
        ("v1.2.txt", "v1.2"),
        ("a.b.c.tar.gz", "a.b.c"),
        ("README", "README"),
    ]:
        (tmp_path / file).write_text("x")
        assert domain_name(tmp_path / file) == name
    (tmp_path / "corpus.v2").mkdir()
    assert domain_name(tmp_path / "corpus.v2") == "corpus.v2"  # a folder keeps its name


def test_a_gzip_bomb_is_read_only_up_to_max_bytes(tmp_path):
    """A .gz that expands to 64 MB is decompressed only as far as max_bytes."""
    import gzip
    import tracemalloc

    from lifelong.data.text_sources import file_documents

    path = tmp_path / "bomb.txt.gz"
    with gzip.open(path, "wb") as f:
        for _ in range(64):
            f.write(b"a" * (1 << 20))
    assert path.stat().st_size < 200_000
    tracemalloc.start()
    documents = file_documents([path], max_bytes=10_000)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert [len(d) for _, d in documents] == [10_000]
    assert peak < 8 << 20  # far below the 64 MB the file expands to


def test_a_corrupt_gzip_is_one_line(tmp_path):
    from lifelong.data import DataError
    from lifelong.data.text_sources import file_documents

    (tmp_path / "bad.gz").write_bytes(b"\x1f\x8b\x08\x00garbage that is not deflate")
    with pytest.raises(DataError, match=r"text file '.*bad.gz' cannot be read .*repair or remove"):
        file_documents([tmp_path / "bad.gz"], max_bytes=1000)
