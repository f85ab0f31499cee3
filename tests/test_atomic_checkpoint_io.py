"""Checkpoints are written whole or not at all: an interrupted save keeps the previous file."""

import os

import pytest
import torch

from solo_cjepa.launch.checkpoints.atomic_checkpoint_io import AtomicCheckpointIO


def test_save_writes_the_checkpoint_and_leaves_no_side_file(tmp_path):
    path = tmp_path / "run" / "model-ep=0.ckpt"
    AtomicCheckpointIO().save_checkpoint({"state_dict": {"w": torch.arange(3)}}, path)
    assert torch.equal(torch.load(path)["state_dict"]["w"], torch.arange(3))
    assert os.listdir(path.parent) == [path.name]


def test_an_interrupted_save_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "model-ep=0.ckpt"
    io = AtomicCheckpointIO()
    io.save_checkpoint({"step": 1}, path)

    def killed(*_):
        raise KeyboardInterrupt  # the process dies between writing and renaming

    monkeypatch.setattr(os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        io.save_checkpoint({"step": 2}, path)
    assert torch.load(path) == {"step": 1}
