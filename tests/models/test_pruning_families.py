"""Structured pruning on every family in the architecture table: score, cut, count, save, reload.

Parametrized over `architectures.FAMILIES` itself, so a family added to the table without a working
path fails here. Each family's tiny random checkpoint comes from tests/families.py.
"""

from __future__ import annotations

import copy

import pytest
import torch
from transformers import AutoModelForSequenceClassification

from compress.models import pruning
from compress.models.architectures import FAMILIES, attr_path, layers_and_heads
from compress.models.loading import load_classifier
from tests.families import tiny_configs

# tiny_configs() names families by model_type except where transformers' differs
CONFIGS = {config.model_type: config for config in tiny_configs().values()}


def tiny(model_type: str):
    torch.manual_seed(0)  # a copy: pruning writes into the model's config
    return AutoModelForSequenceClassification.from_config(copy.deepcopy(CONFIGS[model_type])).eval()


def padded_batch(seed: int = 1) -> dict:
    """Three rows of lengths 9, 5 and 2, right-padded with id 0 and masked."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, 1000, (3, 9), generator=g)
    mask = torch.ones_like(ids)
    for row, length in enumerate((9, 5, 2)):
        ids[row, length:] = 0
        mask[row, length:] = 0
    return {"input_ids": ids, "attention_mask": mask}


def logits(model, batch: dict) -> torch.Tensor:
    with torch.inference_mode():
        return model(**batch).logits


def test_every_claimed_family_has_a_tiny_config_and_a_row():
    """The parametrization below is the table; every family the table claims can be built tiny."""
    assert set(FAMILIES) <= set(CONFIGS)
    covered = {model_type for model_type in CONFIGS if model_type in FAMILIES}
    assert covered == set(FAMILIES)


@pytest.mark.parametrize("model_type", sorted(FAMILIES))
def test_scores_have_one_row_per_distinct_layer(model_type):
    model = tiny(model_type)
    n_layers, n_heads = layers_and_heads(model.config.to_dict())
    batch = padded_batch()  # as the stage batches them: with token_type_ids, which some families refuse
    batch["token_type_ids"] = torch.zeros_like(batch["input_ids"])
    heads, ffn = pruning.gradient_importance(model, [(batch, torch.tensor([0, 1, 0]))])
    assert heads.shape == (n_layers, n_heads) and (heads >= 0).all() and heads.sum() > 0
    assert [len(t) for t in ffn] == pruning.ffn_sizes(model) and all(t.sum() > 0 for t in ffn)
    heads_m, ffn_m = pruning.magnitude_importance(model)
    assert heads_m.shape == heads.shape and (heads_m > 0).all()
    assert [len(t) for t in ffn_m] == [len(t) for t in ffn]


def masked_reference(model, heads: dict[int, list[int]], keep: list[list[int]]):
    """Hooks on the unpruned model that zero the removed heads' context and the removed neurons'
    activations: what the surgery must reproduce exactly (up to float noise)."""
    family = pruning.family_of(model)
    hooks = []
    for i, layer in enumerate(pruning.layers(model)):
        n, d = pruning.head_counts(model)[i], pruning.head_size(layer, family)
        head_gate = torch.ones(n)
        head_gate[heads.get(i, [])] = 0
        ffn_gate = torch.zeros(pruning.ffn_sizes(model)[i])
        ffn_gate[keep[i]] = 1

        def zero_heads(_m, args, g=head_gate, n=n, d=d):
            return ((args[0].unflatten(-1, (n, d)) * g[:, None]).flatten(-2), *args[1:])

        def zero_ffn(_m, args, g=ffn_gate):
            return (args[0] * g, *args[1:])

        hooks.append(attr_path(layer, family.attention_out).register_forward_pre_hook(zero_heads))
        hooks.append(attr_path(layer, family.ffn_out).register_forward_pre_hook(zero_ffn))
    return hooks


@pytest.mark.parametrize("uniform", [True, False], ids=["uniform-ffn", "per-layer-ffn"])
@pytest.mark.parametrize("model_type", sorted(FAMILIES))
def test_prune_shrinks_counts_and_reloads(model_type, uniform, tmp_path):
    model = tiny(model_type)
    family = pruning.family_of(model)
    batch = padded_batch()
    head_scores, ffn_scores = pruning.gradient_importance(model, [(batch, torch.tensor([0, 1, 0]))])
    before_heads, before_ffn = pruning.head_counts(model), pruning.ffn_sizes(model)
    before_params = pruning.parameter_counts(model)["encoder"]
    before_macs = pruning.encoder_macs(model, 1, 16)
    n_remove = round(0.5 * sum(before_heads))
    heads = pruning.select_heads(pruning.normalize_per_layer(head_scores), n_remove, 1, False)
    keep = pruning.select_ffn(ffn_scores, 0.5, uniform)
    hooks = masked_reference(model, heads, keep)
    expected = logits(model, batch)
    for hook in hooks:
        hook.remove()

    pruning.prune_ffn(model, keep)
    pruning.prune_heads(model, heads)

    # physically smaller: head counts, projection shapes and parameters
    assert sum(before_heads) - sum(pruning.head_counts(model)) == n_remove
    assert sum(before_ffn) - sum(pruning.ffn_sizes(model)) == round(0.5 * sum(before_ffn))
    for i, layer in enumerate(pruning.layers(model)):
        inner = pruning.head_counts(model)[i] * pruning.head_size(layer, family)
        assert attr_path(layer, family.attention_out).in_features == inner
        rows = attr_path(layer, family.query).out_features
        assert rows == (3 * inner if family.fused_qkv else inner)
        width = pruning.ffn_sizes(model)[i]
        assert attr_path(layer, family.ffn_in).out_features == (2 if family.ffn_gated else 1) * width
    assert pruning.parameter_counts(model)["encoder"] < before_params
    # MACs from real shapes: half the heads and half the neurons is half the encoder, within one
    # head's or one neuron's share (rounding of the counts)
    drop = 1 - pruning.encoder_macs(model, 1, 16) / before_macs
    slack = 1 / sum(before_heads) + 1 / sum(before_ffn)
    assert abs(drop - 0.5) <= slack
    # the surgery is exactly the masked model, and finite
    pruned = logits(model, batch)
    assert torch.isfinite(pruned).all()
    assert torch.allclose(pruned, expected, atol=1e-5)

    model.save_pretrained(tmp_path, safe_serialization=True)
    reloaded = load_classifier(tmp_path)
    assert pruning.head_counts(reloaded) == pruning.head_counts(model)
    assert pruning.ffn_sizes(reloaded) == pruning.ffn_sizes(model)
    assert (logits(reloaded, batch) - pruned).abs().max() <= 1e-4
    if family.native_pruned_heads and uniform:  # transformers alone rebuilds these shapes
        plain = AutoModelForSequenceClassification.from_pretrained(tmp_path).eval()
        assert (logits(plain, batch) - pruned).abs().max() <= 1e-4


@pytest.mark.parametrize("model_type", sorted(FAMILIES))
def test_pruning_twice_takes_original_head_indices(model_type, tmp_path):
    """Head indices always name the original heads, as transformers' prune_heads does."""
    model = tiny(model_type)
    pruning.prune_heads(model, {0: [1]})
    pruning.prune_heads(model, {0: [1, 2]})  # head 1 is gone already: only head 2 goes now
    assert pruning.kept_heads(model)[0] == [0, 3]
    model.save_pretrained(tmp_path, safe_serialization=True)
    reloaded = load_classifier(tmp_path)
    batch = padded_batch()
    assert (logits(reloaded, batch) - logits(model, batch)).abs().max() <= 1e-4
