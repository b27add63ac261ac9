"""Adding a layer takes one file and one registry entry, and no edit inside ``lifelong/``:
a toy layer, written here, keeps the contract and runs ``lifelong run`` end to end."""

import json
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from contract_checks import CHECKS, Subject
from torch import Tensor, nn

from lifelong.checks import one_of, positive_int
from lifelong.cli import main
from lifelong.config import ConfigError, load_config
from lifelong.layers import LAYERS, LayerEntry, StagedLayer
from lifelong.training.evaluate import evaluate_run

SMOKE = Path(__file__).resolve().parents[2] / "configs" / "split_digits_task_il_smoke.yaml"


class ScaleExperts(StagedLayer):
    """Expert i scales each feature: ``y = Σ_i softmax_i(r_i·x) · (s_i ⊙ x)`` over the
    experts of the allowed stages. (..., dim) -> (..., dim)."""

    def __init__(self, dim: int, *, num_experts: int):
        super().__init__(dim)
        self.router = nn.ParameterList()  # stage s: (m_s, dim)
        self.scales = nn.ParameterList()  # stage s: (m_s, dim)
        self._add(positive_int("num_experts", num_experts))

    def _add(self, m: int):
        self.router.append(nn.Parameter(torch.randn(m, self.dim) * 0.1))
        self.scales.append(nn.Parameter(1 + torch.randn(m, self.dim) * 0.1))
        self._open_stage(m)

    def grow(self, size: int, *, init: str = "random") -> int:
        positive_int("size", size)
        one_of("init", init, ("random",))
        self._freeze_stages()
        self._add(size)
        return self.num_stages - 1

    def active_params_per_token(self) -> int:
        return 2 * self.dim * self.num_experts

    def forward(self, x: Tensor, stage: int | Tensor | None = None) -> Tensor:
        lead = self._check_input(x)
        flat = x.reshape(-1, self.dim)  # (M, d)
        rows = self.stage_rows(stage, lead)
        newest = int(rows.max()) if isinstance(rows, Tensor) else rows
        n = self.stage_bounds[-1 if newest is None else newest]  # old stages: old shapes
        logits = flat @ torch.cat(list(self.router))[:n].t()  # (M, n)
        ids = torch.arange(n).expand_as(logits)
        if isinstance(rows, Tensor):  # a sample may not reach its later stages' experts
            allowed = ids < torch.tensor(self.stage_bounds)[rows][:, None]
            logits = logits.masked_fill(~allowed, float("-inf"))
            ids = ids.masked_fill(~allowed, -1)
        gates = logits.softmax(-1)  # (M, n), 0 where not allowed
        self._route(ids, gates)
        y = (gates @ torch.cat(list(self.scales))[:n]) * flat  # (M, d)
        return y.view(*lead, self.dim)


@dataclass
class ScaleOptions:  # model.scale
    num_experts: int = 4  # initial experts
    grow_size: int = 2  # experts added at each growth


ENTRY = LayerEntry(build=ScaleExperts, options=ScaleOptions, adds=lambda layer, size: size)


@pytest.mark.parametrize("check", CHECKS, ids=[c.__name__ for c in CHECKS])
def test_toy_layer_keeps_the_contract(check):
    check(Subject("scale", ENTRY, 16, {"num_experts": 4}, 2))


def test_toy_layer_runs_end_to_end_and_is_gone_after(tmp_path, capsys):
    quiet = ["log.progress=false", "log.tensorboard=false", "log.png=false"]
    args = [str(SMOKE), "model.ffn=scale", f"runs_dir={tmp_path}", "name=toy", *quiet]
    with LAYERS.register("scale", ENTRY):
        assert main(["run", *args]) == 0, capsys.readouterr().err
        run_dir = tmp_path / "toy"
        metrics = json.loads((run_dir / "metrics.json").read_text())
        matrix = metrics["accuracy_matrix"]
        assert len(matrix) == 5 and metrics["expert_usage"] > 0
        # Task-aware routing over frozen stages, per-task heads and no stem: nothing an old
        # task uses moves, so forgetting is exactly zero, as for PEER.
        assert metrics["forgetting"] == 0.0
        assert metrics["expert_layers"]["ffn.layer"]["per_stage"][4]["usage"] > 0
        state = torch.load(run_dir / "checkpoint.pt", weights_only=True)["model"]
        assert state["ffn.layer.scales.4"].shape == (2, 64)  # grown four times by 2
        assert evaluate_run(run_dir)["per_experience"] == pytest.approx(matrix[-1])
    with pytest.raises(ConfigError, match="model.ffn='scale' is not a registered layer"):
        load_config(SMOKE, ["model.ffn=scale"])


def test_registry_refuses_a_taken_or_bad_name():
    with pytest.raises(ValueError, match="'peer' is registered already"):
        LAYERS.register("peer", ENTRY)
    with pytest.raises(ValueError, match="must be an identifier"):
        LAYERS.register("my-layer", ENTRY)
    with pytest.raises(TypeError, match="with a LayerEntry"):
        LAYERS.register("mine", ScaleExperts)
    with pytest.raises(TypeError, match="a grow_size field"):
        LayerEntry(build=ScaleExperts, options=dict, adds=lambda layer, size: size)
    assert "mine" not in LAYERS


def test_a_config_imports_the_module_that_registers_its_layer(tmp_path, monkeypatch):
    """``imports=[module]`` (kept in config.yaml, so eval and resume import it too)."""
    (tmp_path / "scale_registration.py").write_text(
        "from test_extending import ENTRY\n"
        "from lifelong.layers import LAYERS\n"
        "registration = LAYERS.register('scale_imported', ENTRY)\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))  # undo the cwd entry load_config adds
    cfg = load_config(SMOKE, ["imports=[scale_registration]", "model.ffn=scale_imported"])
    try:
        assert cfg.model.scale_imported.grow_size == 2 and "scale_imported" in LAYERS
    finally:
        sys.modules.pop("scale_registration").registration.remove()
    with pytest.raises(ConfigError, match="module 'no_such_module' cannot be imported"):
        load_config(SMOKE, ["imports=[no_such_module]"])
