"""Structured pruning of BERT-class encoders: score heads and FFN neurons, choose, cut, count.

Cutting makes Linear layers physically smaller (no masks), so the speed-up is real on any runtime.
Head removal goes through transformers' own `prune_heads`, which records `config.pruned_heads` so a
plain `from_pretrained` rebuilds the same shapes; FFN removal slices the two FFN Linear layers and,
when every layer keeps the same width, updates `config.intermediate_size` for the same reason.
Written against transformers 4.57 (BERT's `head_mask` input and `prune_heads`; 5.x removes both).
"""

from __future__ import annotations

import torch

from compress.data.batches import pad_batch


def layers(model):
    return model.base_model.encoder.layer


def head_counts(model) -> list[int]:
    return [layer.attention.self.num_attention_heads for layer in layers(model)]


def ffn_sizes(model) -> list[int]:
    return [layer.intermediate.dense.out_features for layer in layers(model)]


def gradient_importance(
    model, batches: list[tuple[dict, torch.Tensor]]
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Michel et al. (2019) head importance |dL/d mask_h| and first-order Taylor FFN importance
    |sum(activation * dL/d activation)|, both summed over `batches` of (inputs, labels)."""
    config = model.config
    head_mask = torch.ones(config.num_hidden_layers, config.num_attention_heads, requires_grad=True)
    heads = torch.zeros(config.num_hidden_layers, config.num_attention_heads)
    ffn = [torch.zeros(n) for n in ffn_sizes(model)]
    activations: list[torch.Tensor] = []

    def keep(_module, _inputs, output):
        output.retain_grad()
        activations.append(output)

    hooks = [layer.intermediate.register_forward_hook(keep) for layer in layers(model)]
    model.eval()  # no dropout: scores must not depend on which units happened to drop
    try:
        for inputs, labels in batches:
            activations.clear()
            logits = model(**inputs, head_mask=head_mask).logits
            loss = torch.nn.functional.cross_entropy(logits.float(), labels)
            model.zero_grad(set_to_none=True)
            head_mask.grad = None
            loss.backward()
            assert head_mask.grad is not None  # backward() fills it: the mask feeds every head
            heads += head_mask.grad.abs().detach()
            for i, act in enumerate(activations):
                assert act.grad is not None  # retained by the hook
                ffn[i] += (act * act.grad).sum(dim=(0, 1)).abs().detach()
    finally:
        for hook in hooks:
            hook.remove()
        model.zero_grad(set_to_none=True)
    return heads, ffn


def magnitude_importance(model) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Weight-norm importance: the L2 norm of every weight a head or neuron owns. Cheap, no data."""
    rows = []
    ffn = []
    for layer in layers(model):
        att = layer.attention
        n, d = att.self.num_attention_heads, att.self.attention_head_size
        per_head = sum(
            lin.weight.detach().view(n, d, -1).pow(2).sum(dim=(1, 2))
            for lin in (att.self.query, att.self.key, att.self.value)
        ) + att.output.dense.weight.detach().view(-1, n, d).pow(2).sum(dim=(0, 2))
        rows.append(per_head.sqrt())
        ffn.append(
            (
                layer.intermediate.dense.weight.detach().pow(2).sum(dim=1)
                + layer.output.dense.weight.detach().pow(2).sum(dim=0)
            ).sqrt()
        )
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
    weight = linear.weight.detach().index_select(dim, index).clone()
    bias = linear.bias.detach().clone() if dim == 1 else linear.bias.detach()[index].clone()
    new = torch.nn.Linear(weight.shape[1], weight.shape[0], bias=True)
    new.weight.data.copy_(weight)
    new.bias.data.copy_(bias)
    return new


def prune_ffn(model, keep: list[list[int]]) -> None:
    """Shrink each layer's FFN to the neurons in `keep` and record the sizes in the config."""
    for layer, idx in zip(layers(model), keep, strict=True):
        index = torch.tensor(idx, dtype=torch.long)
        layer.intermediate.dense = _slice_linear(layer.intermediate.dense, index, 0)
        layer.output.dense = _slice_linear(layer.output.dense, index, 1)
    sizes = [len(k) for k in keep]
    if len(set(sizes)) == 1:
        model.config.intermediate_size = sizes[0]
        if hasattr(model.config, "compress_intermediate_sizes"):
            del model.config.compress_intermediate_sizes
    else:
        model.config.compress_intermediate_sizes = sizes


def apply_ffn_sizes(model, sizes: list[int]) -> None:
    """Give a freshly built model per-layer FFN widths (the loader's half of non-uniform pruning)."""
    for layer, n in zip(layers(model), sizes, strict=True):
        d = layer.intermediate.dense.in_features
        layer.intermediate.dense = torch.nn.Linear(d, n)
        layer.output.dense = torch.nn.Linear(n, d)


def encoder_macs(model, batch: int, sequence: int) -> int:
    """Multiply-accumulates of the encoder at batch x sequence, counted from the actual layer shapes:
    Q/K/V and output projections, the two attention matmuls, and the two FFN projections."""
    d = model.config.hidden_size
    s = sequence
    total = 0
    for layer in layers(model):
        inner = layer.attention.self.all_head_size  # kept heads x head size
        ffn = layer.intermediate.dense.out_features
        total += 3 * s * d * inner + 2 * s * s * inner + s * inner * d + 2 * s * d * ffn
    return batch * total


def parameter_counts(model) -> dict[str, int]:
    return {
        "encoder": sum(p.numel() for p in model.base_model.encoder.parameters()),
        "total": sum(p.numel() for p in model.parameters()),
    }


def fraction_for_macs(
    n_layers: int, n_heads: int, hidden: int, ffn: int, target: float, sequence: int
) -> float:
    """The smallest fraction f that, removed from both heads and FFN neurons, cuts encoder MACs by
    at least `target` (heads are whole units, so f moves in steps of one head of the model)."""
    d, s = hidden, sequence
    head_size = hidden // n_heads

    def macs(heads: int, width: int) -> int:
        inner = heads * head_size
        return 3 * s * d * inner + 2 * s * s * inner + s * inner * d + 2 * s * d * width

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
