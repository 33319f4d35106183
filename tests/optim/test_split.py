"""SplitOptimizer: Muon on the 2-D parameters and AdamW on the rest, as one optimizer."""

from __future__ import annotations

import io

import pytest
import torch
from torch import nn

from optlab.optim.split import SplitOptimizer, split_groups


def _net() -> nn.Sequential:
    gen = torch.Generator().manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(8, 3), nn.Linear(3, 2))
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=gen))
    return net


def _split(net: nn.Module) -> SplitOptimizer:
    groups = [{"name": "all", "params": list(net.parameters())}]
    return SplitOptimizer(
        torch.optim.Muon(split_groups(groups, matrices=True), lr=0.02),
        torch.optim.AdamW(split_groups(groups, matrices=False), lr=1e-3),
    )


def _loss(net: nn.Module) -> torch.Tensor:
    x = torch.linspace(-1, 1, 2 * 16).reshape(2, 1, 4, 4)
    return net(x).square().mean()


def test_the_groups_are_the_parts_own_and_the_state_reads_both() -> None:
    net = _net()
    opt = _split(net)
    assert [type(opt.owner(g)).__name__ for g in opt.param_groups] == ["Muon", "AdamW"]
    assert opt.param_groups[0] is opt.matrices.param_groups[0]
    opt.param_groups[1]["lr"] = 5e-4  # an edit reaches the part
    assert opt.rest.param_groups[0]["lr"] == 5e-4
    assert len(opt.state) == 0
    _loss(net).backward()
    opt.step()
    conv, linear = net[0].weight, net[2].weight
    assert set(opt.state[linear]) == {"momentum_buffer"}
    assert {"exp_avg", "exp_avg_sq", "step"} <= set(opt.state[conv])
    assert len(opt.state) == 6 and opt.state.get(torch.zeros(1)) is None
    opt.zero_grad()
    assert all(p.grad is None for p in net.parameters())


def test_add_param_group_routes_each_parameter_to_its_part() -> None:
    net, extra = _net(), nn.Linear(2, 2)
    opt = _split(net)
    opt.add_param_group({"params": list(extra.parameters()), "lr": 0.5})
    assert any(extra.weight is p for g in opt.matrices.param_groups for p in g["params"])
    assert any(extra.bias is p for g in opt.rest.param_groups for p in g["params"])
    assert [g["lr"] for g in opt.param_groups] == [0.02, 0.5, 1e-3, 0.5]


def test_a_state_dict_loads_into_a_fresh_pair_and_it_goes_on_the_same() -> None:
    net = _net()
    opt = _split(net)
    for _ in range(3):
        opt.zero_grad()
        _loss(net).backward()
        opt.step()
    twin_net = _net()
    twin_net.load_state_dict(net.state_dict())
    twin = _split(twin_net)
    # Through bytes, as a checkpoint: a state dict in memory shares the live tensors.
    buffer = io.BytesIO()
    torch.save(opt.state_dict(), buffer)
    buffer.seek(0)
    twin.load_state_dict(torch.load(buffer, weights_only=True))
    assert twin.param_groups[0] is twin.matrices.param_groups[0]  # re-shared after loading
    for model, optimizer in ((net, opt), (twin_net, twin)):
        optimizer.zero_grad()
        _loss(model).backward()
        optimizer.step()
    for a, b in zip(net.parameters(), twin_net.parameters(), strict=True):
        assert torch.equal(a, b)
    with pytest.raises(ValueError, match="the state dicts of both parts"):
        twin.load_state_dict(torch.optim.SGD(net.parameters()).state_dict())


def test_the_matrix_part_may_hold_only_matrices() -> None:
    net = _net()
    with pytest.raises(ValueError, match="holds a 4-D parameter"):
        SplitOptimizer(torch.optim.SGD([net[0].weight]), torch.optim.AdamW([net[0].bias]))
