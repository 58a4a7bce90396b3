import os
import pickle

import pytest
import torch

from dcgan import checkpoint as ckpt
from dcgan import runs

from conftest import make_record


def sample_state():
    opt = torch.optim.Adam([torch.nn.Parameter(torch.ones(3))], lr=0.1, betas=(0.5, 0.9))
    opt.param_groups[0]["params"][0].grad = torch.ones(3)
    opt.step()
    return make_record(
        7,
        networks={"generator": {"a.weight": torch.arange(6.0).view(2, 3)}, "opt_g": opt.state_dict()},
        rng={"python": (3, tuple(range(5)), None)},
        plan={"name": "x", "none": None, "flag": True},
    )


def test_round_trip(tmp_path):
    state = sample_state()
    ckpt.save(tmp_path / "c.safetensors", state)
    back = ckpt.load(tmp_path / "c.safetensors")
    assert back.step == 7 and back.plan["name"] == "x" and back.plan["none"] is None and back.plan["flag"] is True
    assert torch.equal(back.networks["generator"]["a.weight"], state.networks["generator"]["a.weight"])
    assert back.rng == state.rng
    assert back.networks["opt_g"]["param_groups"][0]["betas"] == (0.5, 0.9)
    assert torch.equal(back.networks["opt_g"]["state"][0]["exp_avg"], state.networks["opt_g"]["state"][0]["exp_avg"])
    assert back.model == state.model
    # the optimizer accepts the restored state
    opt = torch.optim.Adam([torch.nn.Parameter(torch.ones(3))])
    opt.load_state_dict(back.networks["opt_g"])


class Payload:
    def __reduce__(self):
        return (os.system, ("touch PWNED",))


def test_pickle_payload_is_refused_and_never_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    bad = tmp_path / "evil.safetensors"
    bad.write_bytes(pickle.dumps({"step": Payload()}))
    with pytest.raises(ckpt.CheckpointError, match="not a dcgan checkpoint"):
        ckpt.load(bad)
    # the same payload saved the torch way is refused too
    torch.save({"step": Payload()}, tmp_path / "evil2.safetensors")
    with pytest.raises(ckpt.CheckpointError):
        ckpt.load(tmp_path / "evil2.safetensors")
    assert not (tmp_path / "PWNED").exists()


def test_failed_write_keeps_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "step-00000001.safetensors"
    ckpt.save(path, make_record(1))

    def broken_fsync(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(OSError):
        ckpt.save(path, make_record(2))
    monkeypatch.undo()
    assert ckpt.load(path).step == 1
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary file left behind


def test_keep_prunes_oldest(tmp_path):
    for s in (1, 2, 3, 10):
        ckpt.save(tmp_path / runs.checkpoint_name(s), make_record(s))
    runs.prune(tmp_path, keep=2)
    assert [p.name for p in runs.list_checkpoints(tmp_path)] == [runs.checkpoint_name(3), runs.checkpoint_name(10)]
    assert runs.latest_checkpoint(tmp_path).name == runs.checkpoint_name(10)
