import gzip
import struct

import numpy as np
import pytest

IMAGES_PER_CLASS = {"train": 3, "t10k": 2}


def write_idx(path, array: np.ndarray, compress: bool) -> None:
    """The MNIST IDX format: magic 0x0000 08 <ndim> (uint8 data), big-endian int32 dims, bytes."""
    header = struct.pack(">I", 0x0800 | array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    payload = header + array.astype(np.uint8).tobytes()
    if compress:
        path.with_name(path.name + ".gz").write_bytes(gzip.compress(payload))
    else:
        path.write_bytes(payload)


def write_tiny_mnist(root, compress: bool = True) -> dict:
    """root/MNIST/raw/ with IMAGES_PER_CLASS images of each digit; image pixels = 10 * label."""
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    labels = {}
    for split, per_class in IMAGES_PER_CLASS.items():
        y = np.repeat(np.arange(10), per_class)  # (10 * per_class,)
        x = np.broadcast_to((10 * y)[:, None, None], (len(y), 28, 28))  # (N, 28, 28)
        write_idx(raw / f"{split}-images-idx3-ubyte", x, compress)
        write_idx(raw / f"{split}-labels-idx1-ubyte", y, compress)
        labels[split] = y
    return labels


@pytest.fixture
def idx_writer():
    """write_idx(path, array, compress): one IDX file, as MNIST ships them."""
    return write_idx


@pytest.fixture
def mnist_writer():
    """write_tiny_mnist(root, compress=True) -> {"train": labels, "t10k": labels}."""
    return write_tiny_mnist


@pytest.fixture
def tiny_mnist_root(tmp_path):
    write_tiny_mnist(tmp_path)
    return tmp_path
