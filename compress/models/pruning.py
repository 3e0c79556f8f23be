"""Structured pruning of encoder families: score heads and FFN neurons, choose, cut, count.

Cutting makes Linear layers physically smaller (no masks), so the speed-up is real on any runtime.
Where each family keeps its projections comes from `architectures.FAMILIES`; the surgery is ours
(row/column slices of the projections, then the attention's head-count attributes), not
transformers' `prune_heads`/`head_mask`, which 5.x removes and several families never had.
Reload: for families whose transformers code rebuilds pruned heads (`native_pruned_heads`) the kept
shapes go to `config.pruned_heads` and `config.intermediate_size`, so plain `from_pretrained` works
when every layer keeps the same FFN width; otherwise `compress_kept_heads` and/or
`compress_intermediate_sizes` are written and `loading.load_classifier` rebuilds the shapes through
`apply_ffn_sizes` before a strict load.
"""

from __future__ import annotations

import inspect

import torch

from compress.data.batches import pad_batch
from compress.models.architectures import (
    Family,
    attr_path,
    family_of,
    ffn_sizes,
    has_path,
    head_counts,
    head_size,
    hook_position_bias,
    kept_heads,
    layers,
    relative_position_macs,
    set_path,
)
from compress.models.architectures import (
    plan_shape as plan_shape,  # re-exported: the stage plans with it
)


def gradient_importance(
    model, batches: list[tuple[dict, torch.Tensor]]
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Michel et al. (2019) head importance |dL/d gate_h| and first-order Taylor FFN importance
    |sum(activation * dL/d activation)|, both summed over `batches` of (inputs, labels).

    The gate is ours (no `head_mask`): a ones tensor that multiplies each head's context where it
    enters the attention output projection, which is what BERT's head_mask did, for every family.
    The FFN activation is the input of the FFN output projection (for gated FFNs the gated product).
    A shared layer (ALBERT) is gated by one gate at every depth, and its Taylor terms are summed over
    its uses before the absolute value: removing the neuron removes it everywhere.
    """
    family = family_of(model)
    blocks = layers(model)
    counts = head_counts(model)
    # DistilBERT, MPNet and ModernBERT take no token_type_ids (loading.forward_inputs; importing it
    # here would make an import cycle, the loader imports this module)
    names = set(inspect.signature(model.forward).parameters)
    if len(set(counts)) != 1:
        raise ValueError(f"head scoring needs the same head count in every layer, not {counts}")
    device = next(model.parameters()).device
    gate = torch.ones(len(blocks), counts[0], device=device, requires_grad=True)
    heads = torch.zeros(len(blocks), counts[0])
    ffn = [torch.zeros(n) for n in ffn_sizes(model)]
    activations: list[tuple[int, torch.Tensor]] = []

    def gated(i: int, n: int, d: int):
        def hook(_module, args):
            x = args[0]
            return ((x.unflatten(-1, (n, d)) * gate[i].to(x.dtype)[:, None]).flatten(-2), *args[1:])

        return hook

    def keep(i: int):
        def hook(_module, args):
            args[0].retain_grad()
            activations.append((i, args[0]))

        return hook

    hooks = []
    for i, layer in enumerate(blocks):
        out = attr_path(layer, family.attention_out)
        hooks.append(out.register_forward_pre_hook(gated(i, counts[i], head_size(layer, family))))
        hooks.append(attr_path(layer, family.ffn_out).register_forward_pre_hook(keep(i)))
    model.eval()  # no dropout: scores must not depend on which units happened to drop
    try:
        for inputs, labels in batches:
            activations.clear()
            logits = model(**{k: v for k, v in inputs.items() if k in names}).logits
            loss = torch.nn.functional.cross_entropy(logits.float(), labels)
            model.zero_grad(set_to_none=True)
            gate.grad = None
            loss.backward()
            assert gate.grad is not None  # backward() fills it: the gate feeds every head
            heads += gate.grad.abs().detach().cpu()
            taylor = [torch.zeros(n) for n in ffn_sizes(model)]
            for i, act in activations:
                assert act.grad is not None  # retained by the hook
                taylor[i] += (act * act.grad).sum(dim=tuple(range(act.dim() - 1))).detach().cpu()
            for i, t in enumerate(taylor):
                ffn[i] += t.abs()
    finally:
        for hook in hooks:
            hook.remove()
        model.zero_grad(set_to_none=True)
    return heads, ffn


def _head_weights(layer, family: Family) -> list[torch.Tensor]:
    """Every row-block weight a head owns, as (heads, head size, in) views of its projections."""
    n = getattr(attr_path(layer, family.heads_module), family.heads_attr)
    d = head_size(layer, family)
    if family.fused_qkv:  # rows [q | k | v]: each part is heads x head size
        w = attr_path(layer, family.query).weight.detach().view(3, n, d, -1)
        return [w[0], w[1], w[2]]
    paths = (family.query, family.key, family.value, *family.head_projections)
    return [attr_path(layer, p).weight.detach().view(n, d, -1) for p in paths if has_path(layer, p)]


def magnitude_importance(model) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Weight-norm importance: the L2 norm of every weight a head or neuron owns. Cheap, no data."""
    family = family_of(model)
    rows = []
    ffn = []
    for layer in layers(model):
        n, d = getattr(attr_path(layer, family.heads_module), family.heads_attr), head_size(layer, family)
        out = attr_path(layer, family.attention_out).weight.detach()
        per_head = sum(w.pow(2).sum(dim=(1, 2)) for w in _head_weights(layer, family)) + out.view(
            -1, n, d
        ).pow(2).sum(dim=(0, 2))
        rows.append(per_head.sqrt())
        w_in = attr_path(layer, family.ffn_in).weight.detach()
        w_out = attr_path(layer, family.ffn_out).weight.detach()
        width = w_out.shape[1]
        # a gated FFN's neuron i owns input row i and gate row width + i
        rows_in = w_in.view(2, width, -1).transpose(0, 1) if family.ffn_gated else w_in.view(width, 1, -1)
        ffn_in = rows_in.pow(2).sum(dim=(1, 2))
        ffn.append((ffn_in + w_out.pow(2).sum(dim=0)).sqrt())
    return torch.stack(rows), ffn


def normalize_per_layer(scores: torch.Tensor) -> torch.Tensor:
    """Divide each layer's scores by their L2 norm, so layers compete on equal footing (Michel et al.)."""
    norms = scores.norm(dim=-1, keepdim=True)
    return scores / torch.where(norms > 0, norms, torch.ones_like(norms))


def select_heads(
    scores: torch.Tensor, n_remove: int, min_per_layer: int, per_layer: bool
) -> dict[int, list[int]]:
    """The `n_remove` least important heads, never leaving a layer with fewer than `min_per_layer`.

    Ranked globally over all layers, or (per_layer) the same number from every layer.
    """
    n_layers, n_heads = scores.shape
    if n_remove > n_layers * (n_heads - min_per_layer):
        raise ValueError(
            f"cannot remove {n_remove} of {n_layers * n_heads} heads and keep {min_per_layer} per layer"
        )
    chosen: dict[int, list[int]] = {}
    if per_layer:
        per = n_remove // n_layers
        extra = n_remove - per * n_layers
        for layer in range(n_layers):
            take = per + (1 if layer < extra else 0)
            order = torch.argsort(scores[layer], stable=True).tolist()
            if take:
                chosen[layer] = sorted(order[:take])
        return chosen
    order = torch.argsort(scores.flatten(), stable=True).tolist()
    removed = 0
    for flat in order:
        if removed == n_remove:
            break
        layer, head = divmod(flat, n_heads)
        if n_heads - len(chosen.get(layer, [])) > min_per_layer:
            chosen.setdefault(layer, []).append(head)
            removed += 1
    return {layer: sorted(h) for layer, h in sorted(chosen.items())}


def select_ffn(
    scores: list[torch.Tensor], fraction: float, uniform: bool, min_keep: int = 1
) -> list[list[int]]:
    """Indices of the FFN neurons to keep in each layer (sorted).

    Uniform: every layer keeps the same count (its own best). Otherwise neurons compete globally
    on per-layer-normalised scores, each layer keeping at least `min_keep`.
    """
    sizes = [len(s) for s in scores]
    if uniform:
        keep = max(min_keep, sizes[0] - round(fraction * sizes[0]))
        return [sorted(torch.argsort(s, descending=True, stable=True)[:keep].tolist()) for s in scores]
    normed = [s / (s.norm() if s.norm() > 0 else 1) for s in scores]
    flat = torch.cat(normed)
    owner = torch.cat([torch.full((n,), i) for i, n in enumerate(sizes)])
    n_remove = round(fraction * sum(sizes))
    removed = [0] * len(sizes)
    dropped: list[set[int]] = [set() for _ in sizes]
    offsets = [sum(sizes[:i]) for i in range(len(sizes))]
    for flat_idx in torch.argsort(flat, stable=True).tolist():
        if sum(removed) == n_remove:
            break
        layer = int(owner[flat_idx])
        if sizes[layer] - removed[layer] > min_keep:
            dropped[layer].add(flat_idx - offsets[layer])
            removed[layer] += 1
    return [[i for i in range(n) if i not in dropped[layer]] for layer, n in enumerate(sizes)]


def _slice_linear(linear: torch.nn.Linear, index: torch.Tensor, dim: int) -> torch.nn.Linear:
    index = index.to(linear.weight.device)
    weight = linear.weight.detach().index_select(dim, index).clone()
    shape = {"device": weight.device, "dtype": weight.dtype}
    new = torch.nn.Linear(weight.shape[1], weight.shape[0], bias=linear.bias is not None, **shape)
    new.weight.data.copy_(weight)
    if linear.bias is not None:
        bias = linear.bias.detach().clone() if dim == 1 else linear.bias.detach()[index].clone()
        new.bias.data.copy_(bias)
    return new


def _cut_ffn(layer, family: Family, idx: list[int]) -> None:
    index = torch.tensor(idx, dtype=torch.long)
    rows = index
    if family.ffn_gated:  # keep neuron i's input row i and its gate row width + i
        rows = torch.cat([index, index + attr_path(layer, family.ffn_out).in_features])
    set_path(layer, family.ffn_in, _slice_linear(attr_path(layer, family.ffn_in), rows, 0))
    set_path(layer, family.ffn_out, _slice_linear(attr_path(layer, family.ffn_out), index, 1))


def _record_shapes(model) -> None:
    """Write the kept FFN widths where the loader finds them: `intermediate_size` when uniform (plain
    transformers rebuilds that), `compress_intermediate_sizes` when not, or when heads were recorded
    for the compress loader (that key is what sends `load_classifier` through `apply_ffn_sizes`)."""
    family = family_of(model)
    sizes = ffn_sizes(model)
    if len(set(sizes)) == 1:
        setattr(model.config, family.ffn_key, sizes[0])
    if len(set(sizes)) == 1 and not getattr(model.config, "compress_kept_heads", None):
        if hasattr(model.config, "compress_intermediate_sizes"):
            del model.config.compress_intermediate_sizes
    else:
        model.config.compress_intermediate_sizes = sizes


def prune_ffn(model, keep: list[list[int]]) -> None:
    """Shrink each layer's FFN to the neurons in `keep` and record the sizes in the config."""
    family = family_of(model)
    for layer, idx in zip(layers(model), keep, strict=True):
        _cut_ffn(layer, family, idx)
    _record_shapes(model)


def _head_rows(positions: list[int], d: int) -> torch.Tensor:
    return torch.cat([torch.arange(p * d, (p + 1) * d) for p in positions])


def _cut_heads(layer, family: Family, positions: list[int]) -> None:
    """Keep the heads at `positions` (current numbering): slice the rows of every per-head projection
    and the input columns of the output projection, then tell the attention its new shape."""
    att = attr_path(layer, family.heads_module)
    n, d = getattr(att, family.heads_attr), head_size(layer, family)
    rows = _head_rows(positions, d)
    if family.fused_qkv:  # one Linear, rows [q | k | v]: the same heads from each third
        fused = torch.cat([part * n * d + rows for part in range(3)])
        set_path(layer, family.query, _slice_linear(attr_path(layer, family.query), fused, 0))
    else:
        for path in (family.query, family.key, family.value, *family.head_projections):
            if has_path(layer, path):  # DeBERTa's position projections exist only without share_att_key
                set_path(layer, path, _slice_linear(attr_path(layer, path), rows, 0))
    set_path(layer, family.attention_out, _slice_linear(attr_path(layer, family.attention_out), rows, 1))
    setattr(att, family.heads_attr, len(positions))
    setattr(att, family.width_attr, len(positions) * d)


def prune_heads(model, heads: dict[int, list[int]]) -> None:
    """Remove heads {layer: [original head indices]} and record what each layer kept.

    Families whose transformers code rebuilds pruned heads get `config.pruned_heads` in transformers'
    format (plain from_pretrained reloads them); the others get `compress_kept_heads`.
    """
    family = family_of(model)
    blocks = layers(model)
    kept = kept_heads(model)
    for i, remove in sorted(heads.items()):
        drop = set(remove)
        positions = [p for p, h in enumerate(kept[i]) if h not in drop]
        if len(positions) == len(kept[i]):
            continue
        _cut_heads(blocks[i], family, positions)
        kept[i] = [kept[i][p] for p in positions]
        owner = attr_path(blocks[i], family.heads_module.rpartition(".")[0] or family.heads_module)
        if isinstance(getattr(owner, "pruned_heads", None), set):  # transformers' own bookkeeping
            owner.pruned_heads = owner.pruned_heads | drop
        if family.position_bias_heads:
            hook_position_bias(blocks[i], family, kept[i])
    total = int(getattr(model.config, family.num_heads_key))
    if family.native_pruned_heads:
        model.config.pruned_heads = {
            i: [h for h in range(total) if h not in k] for i, k in enumerate(kept) if len(k) < total
        }
    else:
        model.config.compress_kept_heads = kept
    _record_shapes(model)


def apply_ffn_sizes(model, sizes: list[int]) -> None:
    """Give a freshly built model the pruned shapes its config records (the loader's half): the
    kept heads of `compress_kept_heads`, then the per-layer FFN widths `sizes`. Weights are
    placeholders: the loader then loads the checkpoint strictly."""
    family = family_of(model)
    blocks = layers(model)
    recorded = getattr(model.config, "compress_kept_heads", None)  # native families: from_config did it
    for layer, kept in zip(blocks, recorded, strict=True) if recorded else ():
        _cut_heads(layer, family, list(range(len(kept))))
        if family.position_bias_heads:
            hook_position_bias(layer, family, kept)
    for layer, n in zip(blocks, sizes, strict=True):
        _cut_ffn(layer, family, list(range(n)))


def encoder_macs(model, batch: int, sequence: int) -> int:
    """Multiply-accumulates of the encoder at batch x sequence, counted from the actual layer shapes:
    Q/K/V and output projections, the two attention matmuls, and the FFN projections (three for a
    gated FFN). A shared layer (ALBERT) counts once per use."""
    family = family_of(model)
    d = int(getattr(model.config, family.hidden_key))
    s = sequence
    blocks = layers(model)
    # ALBERT runs each group (all its inner layers) num_hidden_layers / groups times
    uses = int(getattr(model.config, family.num_layers_key)) // len(
        attr_path(model.base_model, family.layers)
    )
    matrices = 3 if family.ffn_gated else 2
    total = 0
    for layer in blocks:
        att = attr_path(layer, family.heads_module)
        inner = getattr(att, family.width_attr)  # kept heads x head size
        ffn = attr_path(layer, family.ffn_out).in_features
        macs = 3 * s * d * inner + 2 * s * s * inner + s * inner * d + matrices * s * d * ffn
        total += uses * (macs + relative_position_macs(att, s, inner, d))
    return batch * total


def parameter_counts(model) -> dict[str, int]:
    """Parameters of the (distinct) encoder layers and of the whole model."""
    return {
        "encoder": sum(p.numel() for layer in layers(model) for p in layer.parameters()),
        "total": sum(p.numel() for p in model.parameters()),
    }


def fraction_for_macs(
    n_layers: int, n_heads: int, hidden: int, ffn: int, target: float, sequence: int, ffn_matrices: int = 2
) -> float:
    """The smallest fraction f that, removed from both heads and FFN neurons, cuts encoder MACs by
    at least `target` (heads are whole units, so f moves in steps of one head of the model). A gated
    FFN has `ffn_matrices` = 3 (ModernBERT's Wi is two matrices wide)."""
    d, s = hidden, sequence
    head_size = hidden // n_heads

    def macs(heads: int, width: int) -> int:
        inner = heads * head_size
        return 3 * s * d * inner + 2 * s * s * inner + s * inner * d + ffn_matrices * s * d * width

    full = macs(n_heads, ffn)
    for step in range(1, n_layers * n_heads):
        f = step / (n_layers * n_heads)
        kept_heads = n_heads - f * n_heads  # on average per layer
        if 1 - macs(kept_heads, ffn - round(f * ffn)) / full >= target:  # type: ignore[arg-type]
            return f
    raise ValueError(f"no fraction of heads and FFN neurons reaches a {target:.0%} MAC reduction")


def importance_batches(ids: list[list[int]], labels: list[int], pad_id: int, device: str) -> list:
    """Batches of (inputs, labels) over token-id rows, sorted by length (little padding)."""
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    out = []
    for start in range(0, len(order), 32):
        chunk = order[start : start + 32]
        batch = {
            k: torch.from_numpy(v).to(device) for k, v in pad_batch([ids[i] for i in chunk], pad_id).items()
        }
        out.append((batch, torch.tensor([labels[i] for i in chunk], device=device)))
    return out
