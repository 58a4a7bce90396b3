import os
import pickle

import pytest
import torch

from dcgan import checkpoint as ckpt


def sample_state():
    opt = torch.optim.Adam([torch.nn.Parameter(torch.ones(3))], lr=0.1, betas=(0.5, 0.9))
    opt.param_groups[0]["params"][0].grad = torch.ones(3)
    opt.step()
    return {"step": 7, "weights": {"a.weight": torch.arange(6.0).view(2, 3)}, "opt": opt.state_dict(),
            "rng": (3, tuple(range(5)), None), "name": "x", "none": None, "flag": True}


def test_round_trip(tmp_path):
    state = sample_state()
    ckpt.save(tmp_path / "c.safetensors", state)
    back = ckpt.load(tmp_path / "c.safetensors")
    assert back["step"] == 7 and back["name"] == "x" and back["none"] is None and back["flag"] is True
    assert torch.equal(back["weights"]["a.weight"], state["weights"]["a.weight"])
    assert back["rng"] == state["rng"]
    assert back["opt"]["param_groups"][0]["betas"] == (0.5, 0.9)
    assert torch.equal(back["opt"]["state"][0]["exp_avg"], state["opt"]["state"][0]["exp_avg"])
    # the optimizer accepts the restored state
    opt = torch.optim.Adam([torch.nn.Parameter(torch.ones(3))])
    opt.load_state_dict(back["opt"])


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
    ckpt.save(path, {"step": 1})

    def broken_fsync(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(OSError):
        ckpt.save(path, {"step": 2})
    monkeypatch.undo()
    assert ckpt.load(path)["step"] == 1
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary file left behind


def test_keep_prunes_oldest(tmp_path):
    for s in (1, 2, 3, 10):
        ckpt.save(tmp_path / ckpt.checkpoint_name(s), {"step": s})
    ckpt.prune(tmp_path, keep=2)
    assert [p.name for p in ckpt.list_checkpoints(tmp_path)] == [ckpt.checkpoint_name(3), ckpt.checkpoint_name(10)]
    assert ckpt.latest_checkpoint(tmp_path).name == ckpt.checkpoint_name(10)
