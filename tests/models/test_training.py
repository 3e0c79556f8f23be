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


def train_tiny(accumulation: int):
    """A tiny BERT (no dropout, FP32) trained two epochs in this process; (initial, final) weights."""
    import random

    import torch
    from transformers import BertConfig, BertForSequenceClassification

    from compress.core.progress import Reporter
    from compress.models.training import train_classifier
    from compress.recipe.schema import TrainSettings

    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=50,
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )
    model = BertForSequenceClassification(config)
    initial = {k: v.clone() for k, v in model.state_dict().items()}
    rng = random.Random(1)
    ids = [[1] + [rng.randrange(3, 50) for _ in range(rng.randrange(2, 12))] for _ in range(57)]
    labels = [sum(r) % 2 for r in ids]
    settings = TrainSettings(
        epochs=2,
        batch_size=10,
        learning_rate=1e-3,
        amp="off",
        evals_per_epoch=2,
        gradient_accumulation_steps=accumulation,
    )
    train_classifier(
        model,
        settings=settings,
        train_ids=ids[:45],
        train_labels=labels[:45],
        dev_ids=ids[45:],
        dev_labels=labels[45:],
        pad_id=0,
        progress=Reporter(quiet=True),
        label="tiny",
    )
    return initial, model.state_dict()


def test_gradient_accumulation_gives_the_whole_batch_step():
    """Three passes per batch (the last batch of 5 rows split 2 + 2 + 1) end on the weights of one
    pass per batch, and training moved them."""
    initial, one_pass = train_tiny(1)
    _, three_passes = train_tiny(3)
    moved = max(float((one_pass[k] - initial[k]).abs().max()) for k in initial)
    assert moved > 1e-3
    difference = max(float((one_pass[k] - three_passes[k]).abs().max()) for k in one_pass)
    assert difference < 1e-5, f"max |Δweight| {difference:.2e}"


@pytest.mark.parametrize("amp,dtype", [("bf16", "torch.bfloat16"), ("off", "torch.float32")])
def test_mixed_precision_really_runs_the_forward_pass_in_bf16(amp, dtype):
    """The classifier's matmuls run under autocast when asked (and only then): seen from inside."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    from compress.core.progress import Reporter
    from compress.models.training import train_classifier
    from compress.recipe.schema import TrainSettings

    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32
    )
    model = BertForSequenceClassification(config)
    seen = set()
    model.classifier.register_forward_hook(lambda module, args, out: seen.add(str(out.dtype)))
    ids = [[1, 5, 7, 9], [1, 8, 3], [1, 4, 4, 4, 6], [1, 2]] * 4
    settings = TrainSettings(epochs=1, batch_size=8, amp=amp, evals_per_epoch=1)
    metrics = train_classifier(
        model,
        settings=settings,
        train_ids=ids,
        train_labels=[0, 1] * 8,
        dev_ids=ids[:4],
        dev_labels=[0, 1, 0, 1],
        pad_id=0,
        progress=Reporter(quiet=True),
        label="amp",
    )
    assert seen == {dtype}
    assert metrics["amp"] == ("bfloat16" if amp == "bf16" else "off")
