"""ShardedPEER on 2 gloo ranks against the unsharded PEER on the whole batch.

Oracle: every rank builds the unsharded layer with the same random state and runs it on
the global batch; the sharded layer runs on the rank's half. Outputs, gradients (x, query,
sub-keys, and the shard's rows), a LazyAdamW step and upcycled growth must agree.
"""

import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from lifelong.layers.peer import PEER, fill_gaussian_rows
from lifelong.layers.row_exchange import rows_held
from lifelong.layers.sharded_peer import ShardedPEER
from lifelong.optim import LazyAdamW

WORLD = 2
OPTIONS = dict(num_experts=64, heads=2, topk=4, key_dim=8, query_batchnorm=False)
DIM, TOKENS = 12, 10  # tokens per rank


def build_pair(sparse_grad: bool, group=None):
    torch.manual_seed(0)
    full = PEER(DIM, sparse_grad=sparse_grad, **OPTIONS)
    torch.manual_seed(0)
    shard = ShardedPEER(DIM, sparse_grad=sparse_grad, group=group, **OPTIONS)
    return full, shard


def mine(table: torch.Tensor, rank: int) -> torch.Tensor:
    return table[rank::WORLD]


def check_step(full, shard, rank: int, seed: int, sparse_grad: bool):
    """One forward/backward/LazyAdamW step of both layers; asserts they agree."""
    gen = torch.Generator().manual_seed(seed)
    x_all = torch.randn(WORLD * TOKENS, DIM, generator=gen)
    w_all = torch.randn(WORLD * TOKENS, DIM, generator=gen)  # loss = Σ y·w
    part = slice(rank * TOKENS, (rank + 1) * TOKENS)
    x_full = x_all.clone().requires_grad_()
    x_mine = x_all[part].clone().requires_grad_()
    y_full, y_mine = full(x_full), shard(x_mine)
    torch.testing.assert_close(y_mine, y_full[part], rtol=0, atol=1e-5)
    (y_full * w_all).sum().backward()
    (y_mine * w_all[part]).sum().backward()
    torch.testing.assert_close(x_mine.grad, x_full.grad[part], rtol=0, atol=1e-5)

    named = dict(full.named_parameters())
    for name, p in shard.named_parameters():
        if p.grad is None:
            assert named[name].grad is None, name
            continue
        grad = p.grad.to_dense() if p.grad.is_sparse else p.grad
        if name.startswith(("down", "up")):  # a shard: its own rows of the full gradient
            ref = named[name].grad
            ref = ref.to_dense() if ref.is_sparse else ref
            first = [0, *full.stage_bounds][int(name.split(".")[1])]  # the stage's first row
            ref = ref[(rank - first) % WORLD :: WORLD]
        else:  # replicated: data parallelism sums the ranks' gradients
            dist.all_reduce(grad)
            p.grad = grad
            ref = named[name].grad
        torch.testing.assert_close(grad, ref, rtol=0, atol=1e-5, msg=name)

    for layer in (full, shard):
        opt = LazyAdamW([p for p in layer.parameters() if p.requires_grad], lr=0.05)
        opt.step()
        opt.zero_grad()
    for name in ("_down", "_up"):
        torch.testing.assert_close(
            getattr(shard, name), mine(getattr(full, name), rank), rtol=0, atol=1e-6
        )


def worker(rank: int, store: str, results: str):
    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=WORLD)
    try:
        for sparse_grad in (True, False):
            full, shard = build_pair(sparse_grad)
            for name in ("_down", "_up"):  # same draw, own rows
                assert torch.equal(getattr(shard, name), mine(getattr(full, name), rank))
            expert_bytes = sum(t.numel() * t.element_size() for t in (full._down, full._up))
            shard_bytes = sum(t.numel() * t.element_size() for t in (shard._down, shard._up))
            assert shard_bytes <= 0.55 * expert_bytes, (shard_bytes, expert_bytes)

            check_step(full, shard, rank, seed=1, sparse_grad=sparse_grad)
            # Growth by upcycling, from the mass of both ranks' tokens (data-parallel
            # training sums it before growth).
            dist.all_reduce(shard.router_mass)
            torch.testing.assert_close(shard.router_mass, full.router_mass, rtol=0, atol=1e-5)
            torch.manual_seed(5)
            full.grow(3, init="upcycle", noise=0.1)
            torch.manual_seed(5)
            shard.grow(3, init="upcycle", noise=0.1)
            for name in ("_down", "_up"):
                torch.testing.assert_close(
                    getattr(shard, name), mine(getattr(full, name), rank), rtol=0, atol=1e-6
                )
            check_step(full, shard, rank, seed=2, sparse_grad=sparse_grad)
            assert shard.exchanged_bytes > 0
        with open(f"{results}.{rank}", "w") as f:
            f.write("ok")
        dist.barrier()  # both ranks done before either tears the group down
    finally:
        dist.destroy_process_group()
    # Under load gloo sometimes aborts in interpreter teardown after a clean destroy
    # ("terminate called without an active exception", no Python frame; about 1 launch in
    # 10 on 2 busy cores). Every check has passed and is recorded above: skip the teardown.
    os._exit(0)


def test_sharded_peer_matches_unsharded_on_two_ranks(tmp_path):
    results = str(tmp_path / "ok")
    mp.spawn(worker, args=(str(tmp_path / "store"), results), nprocs=WORLD)
    assert all((tmp_path / f"ok.{r}").read_text() == "ok" for r in range(WORLD))


def test_rows_held_partitions_every_row():
    for rows in range(0, 20):
        for world in (1, 2, 3, 4):
            counts = [rows_held(rows, rank=r, world=world) for r in range(world)]
            assert counts == [len(range(r, rows, world)) for r in range(world)]


def test_drawn_rows_are_the_kept_rows_of_one_blockwise_draw(monkeypatch):
    monkeypatch.setattr("lifelong.layers.peer._DRAW_ROWS", 4)  # 11 rows: blocks of 4, 4, 3
    torch.manual_seed(3)
    blocks = [torch.empty(rows, 3).normal_(0.0, 0.5) for rows in (4, 4, 3)]
    torch.manual_seed(3)
    whole = fill_gaussian_rows(torch.empty(11, 3), 11, 0.5)
    assert torch.equal(whole, torch.cat(blocks))
    for start in range(3):
        torch.manual_seed(3)
        rows = torch.empty(len(range(start, 11, 3)), 3)
        assert torch.equal(fill_gaussian_rows(rows, 11, 0.5, keep=(start, 3)), whole[start::3])


def test_sharded_peer_needs_a_process_group():
    with pytest.raises(RuntimeError, match="init_process_group"):
        ShardedPEER(DIM, **OPTIONS)
