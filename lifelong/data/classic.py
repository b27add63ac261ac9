"""Avalanche's classic benchmarks (avalanche.benchmarks.classic) on data the user already has.

Avalanche always asks torchvision to download, which returns at once when the files are in
place. So the files are checked here first, exactly as torchvision checks them, and a missing
set with download=False is a DataError instead of a network attempt:
- MNIST: <root>/MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte (the raw IDX files;
  .gz files next to them are decompressed, as torchvision's download does);
- CIFAR-100: <root>/cifar-100-python/{train,test,meta} with their published MD5 sums
  (a verified cifar-100-python.tar.gz in <root> is extracted first).
"""

import gzip
import shutil
from pathlib import Path
from types import MappingProxyType

from avalanche.benchmarks.classic import PermutedMNIST, SplitCIFAR100, SplitMNIST
from avalanche.benchmarks.datasets import default_dataset_location
from torchvision.datasets import CIFAR100
from torchvision.datasets.utils import check_integrity, extract_archive

from .checks import non_negative_int, one_of, positive_int
from .errors import DataError
from .experiences import make_benchmark
from .holdout import held_out
from .spec import StreamSpec
from .wrap import from_benchmark

MNIST_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)

# name -> (builder, dataset folder name under Avalanche's default location, number of classes,
#          default number of experiences)
CLASSIC = MappingProxyType(
    {
        "SplitMNIST": (SplitMNIST, "mnist", 10, 5),
        "PermutedMNIST": (PermutedMNIST, "mnist", 10, 10),
        "SplitCIFAR100": (SplitCIFAR100, "cifar100", 100, 10),
    }
)


def mnist_present(root: Path) -> bool:
    """True when torchvision's MNIST finds its raw files; gunzips lone .gz files first."""
    raw = root / "MNIST" / "raw"
    for name in MNIST_FILES:
        packed = raw / f"{name}.gz"
        if not (raw / name).is_file() and packed.is_file():
            try:
                with gzip.open(packed) as src, open(raw / name, "wb") as dst:
                    shutil.copyfileobj(src, dst)
            except OSError as e:
                raise DataError(f"cannot decompress {packed} ({e}); decompress it yourself") from e
    return all((raw / name).is_file() for name in MNIST_FILES)


def cifar100_state(root: Path) -> str:
    """ "ok", "missing" or "corrupt", by torchvision's CIFAR100 MD5 sums."""
    files = [(root / CIFAR100.base_folder / f, md5) for f, md5 in CIFAR100.train_list]
    files += [(root / CIFAR100.base_folder / f, md5) for f, md5 in CIFAR100.test_list]
    files.append((root / CIFAR100.base_folder / CIFAR100.meta["filename"], CIFAR100.meta["md5"]))
    if all(check_integrity(str(f), md5) for f, md5 in files):
        return "ok"
    archive = root / CIFAR100.filename
    if check_integrity(str(archive), CIFAR100.tgz_md5):
        extract_archive(str(archive), str(root))
        return cifar100_state(root)
    return "corrupt" if any(f.exists() for f, _ in files) else "missing"


def _check_present(name: str, root: Path) -> None:
    if name.endswith("MNIST"):
        if not mnist_present(root):
            raise DataError(
                f"MNIST not found under dataset_root='{root}' and it cannot be downloaded here: "
                f"place the files there (MNIST/raw/{MNIST_FILES[0]} and 3 more) or allow "
                "download=True"
            )
        return
    state = cifar100_state(root)
    if state == "missing":
        raise DataError(
            f"CIFAR100 not found under dataset_root='{root}' and it cannot be downloaded here: "
            "place the files there (cifar-100-python/train, test, meta) or allow download=True"
        )
    if state == "corrupt":
        raise DataError(
            f"CIFAR100 files under dataset_root='{root}' do not match their published MD5 sums: "
            "replace cifar-100-python/ with a fresh copy or allow download=True"
        )


def avalanche_classic(
    *,
    name: str = "SplitMNIST",
    dataset_root: str | None = None,
    n_experiences: int | None = None,
    return_task_id: bool = False,
    seed: int = 0,
    download: bool = False,
    validation: bool = False,
    validation_fraction: float = 0.2,
) -> StreamSpec:
    """SplitMNIST (5 x 2 classes), PermutedMNIST (10 permutations) or SplitCIFAR100 (10 x 10
    classes) from Avalanche, with dataset_root defaulting to Avalanche's data folder.

    validation: the test experiences are never scored; ``validation_fraction`` of each
    training experience, drawn by ``seed``, is held out and scored in their place."""
    builder, folder, num_classes, default_n = CLASSIC[one_of("name", name, tuple(CLASSIC))]
    n = default_n if n_experiences is None else positive_int("n_experiences", n_experiences)
    if name.startswith("Split") and num_classes % n:
        raise DataError(
            f"{name} cannot split {num_classes} classes into n_experiences={n} equal groups; "
            f"choose a divisor of {num_classes}"
        )
    root = Path(dataset_root).expanduser() if dataset_root else default_dataset_location(folder)
    if not download:
        _check_present(name, root)
    try:
        benchmark = builder(
            n, return_task_id=return_task_id, seed=non_negative_int("seed", seed), dataset_root=root
        )
    except (OSError, RuntimeError) as e:  # torchvision's download errors (URLError is an OSError)
        raise DataError(
            f"{name} could not be loaded or downloaded into dataset_root='{root}' ({e}): "
            "place the files there yourself"
        ) from e
    if validation:
        benchmark = _validation_benchmark(benchmark, validation_fraction, seed)
    if name == "PermutedMNIST":
        scenario = "task-il" if return_task_id else "domain-il"
        names = [f"permutation {i}" for i in range(n)]
    else:
        scenario, names = ("task-il" if return_task_id else "class-il"), None
    return from_benchmark(
        benchmark, task="classification", scenario=scenario, experience_names=names
    )


def _validation_benchmark(benchmark, share: float, seed: int):
    """A benchmark of the training experiences' kept samples and, as its test stream,
    their held-out samples (``holdout.held_out``, stratified by class)."""
    train, held = [], []
    for e, experience in enumerate(benchmark.train_stream):
        data = experience.dataset
        targets = [int(t) for t in data.targets]
        keep, hold = held_out(targets, share=share, seed=seed + e, where=f"train experience {e}")
        train.append(data.subset(keep))
        held.append(data.subset(hold))
    return make_benchmark(train, held, classification=True)
