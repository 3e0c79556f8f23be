import pytest
import torch
from transformers import AutoModelForSequenceClassification, BertConfig, BertForSequenceClassification

from compress.models import pruning
from compress.models.loading import load_classifier


def tiny_bert(layers=2, heads=4, hidden=32, ffn=64, seed=0):
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=100,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=ffn,
        num_labels=2,
    )
    return BertForSequenceClassification(config).eval()


def inputs(seed=1, batch=3, seq=7):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, 100, (batch, seq), generator=g)
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}


@pytest.mark.parametrize(
    "scores,n_remove,min_keep,per_layer,expected",
    [
        # global: the three lowest scores wherever they are
        ([[0.1, 0.9, 0.8], [0.2, 0.3, 0.7]], 3, 1, False, {0: [0], 1: [0, 1]}),
        # global but a layer may not drop below min_keep: layer 0's two weakest, then layer 1's weakest
        ([[0.1, 0.2, 0.3], [0.9, 0.8, 0.7]], 3, 1, False, {0: [0, 1], 1: [2]}),
        # per layer: the same count from every layer
        ([[0.1, 0.9, 0.8], [0.2, 0.3, 0.7]], 2, 1, True, {0: [0], 1: [0]}),
        # per layer with a remainder: earlier layers give one more
        ([[0.1, 0.9, 0.8], [0.2, 0.3, 0.7]], 3, 1, True, {0: [0, 2], 1: [0]}),
        ([[0.1, 0.9]], 0, 1, False, {}),
    ],
)
def test_select_heads(scores, n_remove, min_keep, per_layer, expected):
    assert pruning.select_heads(torch.tensor(scores), n_remove, min_keep, per_layer) == expected


def test_select_heads_refuses_to_empty_a_layer():
    with pytest.raises(ValueError, match="keep 1 per layer"):
        pruning.select_heads(torch.rand(2, 3), 5, 1, False)


def test_select_ffn_uniform_and_global():
    scores = [torch.tensor([4.0, 1.0, 3.0, 2.0]), torch.tensor([0.1, 0.2, 0.3, 0.4])]
    assert pruning.select_ffn(scores, 0.5, uniform=True) == [[0, 2], [2, 3]]
    # global on per-layer-normalised scores: layer 1's small raw values do not doom it
    kept = pruning.select_ffn(scores, 0.5, uniform=False)
    assert sum(len(k) for k in kept) == 4 and all(len(k) >= 1 for k in kept)


def test_normalize_per_layer():
    out = pruning.normalize_per_layer(torch.tensor([[3.0, 4.0], [0.0, 0.0]]))
    assert torch.allclose(out, torch.tensor([[0.6, 0.8], [0.0, 0.0]]))


def test_encoder_macs_halve_with_half_heads_and_ffn():
    model = tiny_bert()
    full = pruning.encoder_macs(model, 1, 128)
    d, s, ffn = 32, 128, 64
    assert full == 2 * (4 * s * d * d + 2 * s * s * d + 2 * s * d * ffn)
    pruning.prune_ffn(model, [list(range(32))] * 2)
    pruning.prune_heads(model, {0: [0, 1], 1: [2, 3]})
    assert pruning.encoder_macs(model, 1, 128) == full // 2
    assert pruning.encoder_macs(model, 4, 128) == 4 * (full // 2)


def macs_reduction_after(fraction: float, layers=6, heads=12, hidden=384, ffn=1536) -> float:
    """Cut `fraction` of the heads (as the stage counts them) and of the FFN neurons from a real model of
    that shape and measure the encoder-MAC reduction from its layers."""
    from transformers import BertConfig, BertForSequenceClassification

    config = BertConfig(
        vocab_size=50,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=ffn,
    )
    model = BertForSequenceClassification(config)
    full = pruning.encoder_macs(model, 1, 128)
    n_remove = round(fraction * layers * heads)
    chosen = pruning.select_heads(torch.zeros(layers, heads), n_remove, 1, per_layer=False)
    pruning.prune_ffn(model, [list(range(ffn - round(fraction * ffn)))] * layers)
    pruning.prune_heads(model, chosen)
    return 1 - pruning.encoder_macs(model, 1, 128) / full


def test_fraction_for_macs_is_the_smallest_that_reaches_the_target():
    """MiniLM-L6's shape, 45% of encoder MACs: the fraction reaches it, one head less does not."""
    f = pruning.fraction_for_macs(6, 12, 384, 1536, 0.45, 128)
    assert macs_reduction_after(f) >= 0.45
    assert macs_reduction_after(f - 1 / 72) < 0.45
    with pytest.raises(ValueError):
        pruning.fraction_for_macs(1, 2, 32, 64, 0.99, 128)


def test_gradient_importance_shapes_and_signal():
    model = tiny_bert()
    batch = inputs()
    heads, ffn = pruning.gradient_importance(model, [(batch, torch.tensor([0, 1, 0]))])
    assert heads.shape == (2, 4) and (heads >= 0).all() and heads.sum() > 0
    assert [t.shape[0] for t in ffn] == [64, 64] and all(t.sum() > 0 for t in ffn)


def test_magnitude_importance_shapes():
    heads, ffn = pruning.magnitude_importance(tiny_bert())
    assert heads.shape == (2, 4) and [len(t) for t in ffn] == [64, 64]


def test_uniform_prune_reloads_with_plain_transformers(tmp_path):
    model = tiny_bert()
    pruning.prune_ffn(model, [list(range(0, 64, 2))] * 2)
    pruning.prune_heads(model, {0: [1], 1: [0, 3]})
    model.save_pretrained(tmp_path)
    plain = AutoModelForSequenceClassification.from_pretrained(tmp_path).eval()
    x = inputs()
    with torch.inference_mode():
        assert torch.allclose(model(**x).logits, plain(**x).logits, atol=1e-6)
    assert plain.config.intermediate_size == 32
    assert pruning.head_counts(plain) == [3, 2]


def test_per_layer_prune_needs_and_gets_compress_loader(tmp_path):
    model = tiny_bert()
    pruning.prune_ffn(model, [list(range(16)), list(range(48))])
    model.save_pretrained(tmp_path)
    assert model.config.compress_intermediate_sizes == [16, 48]
    with pytest.raises((RuntimeError, ValueError)):  # plain transformers refuses (size mismatch)
        AutoModelForSequenceClassification.from_pretrained(tmp_path)
    loaded = load_classifier(tmp_path)
    x = inputs()
    with torch.inference_mode():
        assert torch.allclose(model(**x).logits, loaded(**x).logits, atol=1e-6)
    assert pruning.ffn_sizes(loaded) == [16, 48]


def test_our_head_surgery_matches_transformers_prune_heads():
    """BERT keeps transformers' format and numbers: same weights, same config.pruned_heads."""
    ours, theirs = tiny_bert(), tiny_bert()
    pruning.prune_heads(ours, {0: [1], 1: [0, 3]})
    theirs.prune_heads({0: [1], 1: [0, 3]})
    assert ours.config.pruned_heads == {0: [1], 1: [0, 3]} == theirs.config.pruned_heads
    a, b = ours.state_dict(), theirs.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert pruning.head_counts(theirs) == pruning.head_counts(ours) == [3, 2]
