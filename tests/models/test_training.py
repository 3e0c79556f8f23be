import random

import pytest
import torch

from compress.models.training import choose_amp, length_bucketed_batches, warmup_linear_decay


def test_batches_cover_every_row_once():
    lengths = [random.Random(0).randint(1, 60) for _ in range(1000)]
    batches = length_bucketed_batches(lengths, 32, random.Random(1), bucket=True)
    assert sorted(i for b in batches for i in b) == list(range(1000))
    assert all(len(b) <= 32 for b in batches)


def test_bucketing_cuts_padding():
    lengths = [random.Random(i).randint(1, 64) for i in range(3200)]

    def padded(bucket: bool) -> int:
        batches = length_bucketed_batches(lengths, 32, random.Random(0), bucket=bucket)
        return sum(max(lengths[i] for i in b) * len(b) for b in batches)

    assert padded(True) < 0.7 * padded(False)


def test_batches_are_seeded():
    lengths = list(range(100))
    a = length_bucketed_batches(lengths, 8, random.Random(5), bucket=True)
    b = length_bucketed_batches(lengths, 8, random.Random(5), bucket=True)
    assert a == b


def test_schedule_warms_up_then_decays_to_zero():
    f = warmup_linear_decay(total_steps=100, warmup_ratio=0.1)
    assert f(0) == pytest.approx(0.1) and f(9) == pytest.approx(1.0)
    assert f(10) == pytest.approx(1.0) and f(55) == pytest.approx(0.5) and f(100) == 0.0
    values = [f(s) for s in range(10, 101)]
    assert values == sorted(values, reverse=True)


@pytest.mark.parametrize("amp,expected", [("off", None), ("bf16", torch.bfloat16), ("fp16", torch.float16)])
def test_explicit_amp(amp, expected):
    assert choose_amp(amp, "cpu") is expected


def test_auto_amp_on_cpu_follows_native_bf16(monkeypatch):
    import compress.models.training as ft

    monkeypatch.setattr(ft, "cpu_has_native_bf16", lambda: True)
    assert choose_amp("auto", "cpu") is torch.bfloat16
    monkeypatch.setattr(ft, "cpu_has_native_bf16", lambda: False)
    assert choose_amp("auto", "cpu") is None
