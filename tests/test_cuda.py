"""CUDA paths. They run only where a GPU is present; CI has none, so they skip there."""

import pytest
import torch

from lifelong.experiment import resolve_device
from lifelong.layers import PEER
from lifelong.optim import LazyAdamW

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def test_device_auto_falls_back_to_cpu_and_cuda_is_checked():
    want = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == want
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="device=cuda but no CUDA device"):
            resolve_device("cuda")
    with pytest.raises(ValueError, match="device='tpu'"):
        resolve_device("tpu")


@cuda
def test_peer_on_cuda_matches_cpu_and_trains():
    layer = PEER(32, num_experts=64, heads=2, topk=4)
    layer.grow(2)
    x = torch.randn(50, 32)
    layer.eval()
    want = layer(x)
    gpu = layer.to("cuda")
    assert gpu._aliased(gpu.up, gpu._up) and gpu._up.is_cuda
    torch.testing.assert_close(gpu(x.cuda()).cpu(), want, rtol=1e-4, atol=1e-5)
    gpu.train()
    frozen = gpu.up[0].detach().clone()
    opt = LazyAdamW([p for p in gpu.parameters() if p.requires_grad], lr=1e-2)
    gpu(x.cuda()).pow(2).mean().backward()
    opt.step()
    assert torch.equal(gpu.up[0], frozen)


@cuda
def test_smoke_run_on_cuda(tmp_path):
    from pathlib import Path

    from lifelong.config import load_config
    from lifelong.training.run import run

    path = Path(__file__).resolve().parents[1] / "configs/split_digits_task_il_smoke.yaml"
    run_dir = run(load_config(path, [f"runs_dir={tmp_path}", "device=cuda"]))
    assert (run_dir / "metrics.json").is_file()
