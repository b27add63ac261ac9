"""Whether a model fits before it is built: its bytes counted on PyTorch's meta device
(tensors with shapes and no storage), against the memory the machine has available.

``model.dim=20000`` or ``model.peer.num_experts=10**12`` would otherwise allocate until the
kernel's out-of-memory killer ends the process, with no message. The count covers the
parameters and buffers of the model as first built, plus AdamW's two moments for every
trainable parameter (``LazyAdamW`` keeps them only for rows it has touched, so this is
the bound); growth adds to it later, experience by experience.
"""

import torch

from ..config import ConfigError
from .models import build_model


def model_bytes(cfg, spec) -> int:
    """Bytes of the model's parameters and buffers plus AdamW's moments, before growth."""
    with torch.random.fork_rng(devices=[]), torch.device("meta"):
        # fork_rng: initialising meta tensors must not move the generator the real
        # model is initialised from.
        model = build_model(cfg, spec)
    tensors = [*model.parameters(), *model.buffers()]
    total = sum(t.numel() * t.element_size() for t in tensors)
    moments = sum(2 * p.numel() * p.element_size() for p in model.parameters() if p.requires_grad)
    return total + moments


def available_bytes(device: torch.device) -> int | None:
    """Memory free for a new allocation on ``device`` (Linux MemAvailable for the CPU);
    None where it cannot be read."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _gib(n: int) -> str:
    return f"{n / 2**30:,.1f} GiB"


def check_fits(cfg, spec, device: torch.device) -> None:
    """Refuse, in one line, a model that cannot fit in the available memory."""
    need, have = model_bytes(cfg, spec), available_bytes(device)
    if have is not None and need > have:
        raise ConfigError(
            f"the model needs about {_gib(need)} (weights, buffers and AdamW's two moments, "
            f"before any growth) and {_gib(have)} is available on {device.type}; lower "
            f"model.dim or model.{cfg.model.ffn}'s size (e.g. num_experts)"
        )
