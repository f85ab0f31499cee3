"""A C-JEPA training step and its backward make no host synchronisation (counted on CPU by
wrapping the tensor-to-Python conversions and blocking ops), and the collapse monitors, which do
need the host, run only on the steps whose values Lightning writes."""

import pytest
import torch
from cjepa_helpers import cpu_trainer, image_batch, pretrain_loader, tiny_vit_cfg

import solo_cjepa.method
from bench.syncs import HostSyncCounter
from solo_cjepa.launch.run_health import RunHealth
from solo_cjepa.method import CJEPA


def quiet_model(monitors_due: bool, **kwargs) -> CJEPA:
    """A C-JEPA model outside a Trainer, Lightning's logging stubbed out."""
    torch.manual_seed(0)
    model = CJEPA(tiny_vit_cfg(**kwargs))
    model.log = model.log_dict = lambda *args, **kw: None
    model._monitors_due = lambda: monitors_due
    return model


def counted_step(model: CJEPA, batch, batch_idx: int) -> HostSyncCounter:
    with HostSyncCounter() as counter:
        loss = model.training_step(batch, batch_idx)
        loss.backward()
    return counter


def test_the_counter_catches_each_kind_of_sync():
    x = torch.arange(6.0).reshape(2, 3)
    with HostSyncCounter() as counter:
        x.sum().item()
        bool(x.any())
        int(x[0, 1])
        x.tolist()
        torch.nonzero(x)
        x[x > 2]  # boolean indexing goes through nonzero in C++: not visible from Python
        torch.linalg.svdvals(x)
    assert counter.calls == {
        "Tensor.item": 1,
        "Tensor.__bool__": 1,
        "Tensor.__int__": 1,
        "Tensor.tolist": 1,
        "torch.nonzero": 1,
        "torch.linalg.svdvals": 1,
    }
    x.sum().item()
    assert counter.total == 6, "the patches are undone on exit"


@pytest.mark.parametrize("crops", [1, 2])
@pytest.mark.parametrize("pred_layout", ["repeat", "single"])
@pytest.mark.parametrize("vicreg_weight", [0.0, 0.001])
def test_training_step_and_backward_make_no_host_sync(crops, pred_layout, vicreg_weight):
    model = quiet_model(
        False, num_large_crops=crops, pred_layout=pred_layout, vicreg_weight=vicreg_weight
    )
    batch = image_batch(batch_size=8, num_large_crops=crops)
    counted_step(model, batch, 0)  # warm-up: first-call caches (mask sizes, timm, autograd)
    for batch_idx in (1, 2):
        counter = counted_step(model, batch, batch_idx)
        assert counter.total == 0, dict(counter.calls)


def test_a_step_with_monitors_is_seen_syncing():
    model = quiet_model(True)
    batch = image_batch(batch_size=8)
    counted_step(model, batch, 0)
    counter = counted_step(model, batch, 1)
    assert counter.calls["torch.linalg.svdvals"] == 2, "effective rank of both encoders"


def test_monitors_run_every_log_every_n_steps(monkeypatch):
    ranks = []

    def effective_rank(emb):
        ranks.append(model.trainer.global_step)
        return torch.tensor(1.0)

    monkeypatch.setattr(solo_cjepa.method, "effective_rank", effective_rank)
    torch.manual_seed(0)
    model = CJEPA(tiny_vit_cfg())
    cpu_trainer(max_steps=6, log_every_n_steps=3).fit(model, pretrain_loader(batch_size=4))
    # Lightning writes the values of the 3rd and 6th step (global steps 2 and 5 while they run).
    assert ranks == [2, 2, 5, 5]


class CountedRunHealth(RunHealth):
    """The run-health callback, its host syncs counted per step: (logged step?, syncs)."""

    def __init__(self):
        super().__init__(collapse="warn")
        self.counts = []

    def on_train_batch_end(self, trainer, *args):
        logged = trainer._logger_connector.should_update_logs
        with HostSyncCounter() as counter:
            super().on_train_batch_end(trainer, *args)
        self.counts.append((logged, counter.total))


def test_run_health_syncs_only_on_logged_steps():
    """The non-finite record is kept on the device at every step; it is read, and the ranks
    followed, on the steps Lightning logs, which wait for the device anyway."""
    torch.manual_seed(0)
    health = CountedRunHealth()
    trainer = cpu_trainer(max_steps=6, log_every_n_steps=3, callbacks=[health])
    trainer.fit(CJEPA(tiny_vit_cfg()), pretrain_loader(batch_size=4))
    assert [logged for logged, _ in health.counts] == [False, False, True] * 2
    assert all(syncs == 0 for logged, syncs in health.counts if not logged), health.counts
    assert all(syncs > 0 for logged, syncs in health.counts if logged), health.counts
