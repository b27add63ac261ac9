"""What every stream builder returns: an Avalanche benchmark plus what a model needs to know."""

from dataclasses import dataclass


@dataclass
class StreamSpec:
    # An Avalanche benchmark: .train_stream and .test_stream, the same number of experiences,
    # aligned by index. Minibatches are (x, y, t).
    benchmark: object
    # "classification" (y: class ids, (B,)) or "lm" (x, y: bytes, (B, seq_len); y = x shifted).
    task: str
    # "class-il" | "task-il" | "domain-il" | "lm" (van de Ven & Tolias 2019 for the first three).
    scenario: str
    # Shape of one sample's x: e.g. (64,) or (1, 28, 28); for "lm" (seq_len,).
    input_shape: tuple[int, ...]
    # Classification: total number of classes over the stream; "lm": 256 (the byte vocabulary).
    num_classes: int
    # One human-readable name per experience, e.g. ["digits 0-1", ...] or ["python", "prose"].
    experience_names: list[str]
