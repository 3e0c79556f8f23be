"""Which encoder families structured pruning knows, and where each keeps what pruning cuts.

One entry per family (keyed by `config.model_type`): where its layers, attention projections and FFN
projections live, which attributes hold the attention's head count and width (they must follow the
sliced matrices), and the config keys that give its shape. Everything that prunes, or checks a
pruning plan, asks this table; a family not in it is refused by `compress validate` with a line
naming it. The other stages need no entry: any `AutoModelForSequenceClassification` runs them.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Family:
    """Where a family keeps what pruning cuts (attribute paths from the base model / one layer)."""

    layers: str  # from the base model: the list of transformer layers (or of layer groups, see inner)
    query: str  # with fused_qkv: the one Linear whose rows are [q | k | v], each heads x head size
    key: str
    value: str
    attention_out: str  # the projection after attention (its input columns are the heads)
    ffn_in: str  # the FFN's first Linear (output rows are neurons)
    ffn_out: str  # the FFN's second Linear (input columns are neurons)
    heads_module: str  # the module whose attributes below describe the attention's current shape
    heads_attr: str = "num_attention_heads"
    width_attr: str = "all_head_size"  # kept heads x head size
    head_size_attr: str = "attention_head_size"
    fused_qkv: bool = False
    ffn_gated: bool = False  # ffn_in has 2 x width rows: [input | gate], neuron i owns rows i and width+i
    head_projections: tuple[str, ...] = ()  # more per-head row blocks, cut where the layer has them
    inner: str = ""  # layer groups: each group's list of layers (ALBERT), flattened in order
    # transformers rebuilds heads from `config.pruned_heads` (its `_prune_heads` exists and is right);
    # otherwise the kept heads go to `compress_kept_heads` and the compress loader rebuilds them
    native_pruned_heads: bool = True
    position_bias_heads: bool = False  # a per-head bias is passed in as args[3] (MPNet): select kept
    num_layers_key: str = "num_hidden_layers"
    num_heads_key: str = "num_attention_heads"
    hidden_key: str = "hidden_size"
    ffn_key: str = "intermediate_size"
    group_keys: tuple[str, ...] = ()  # config keys whose product is the count of distinct layers


BERT_LAYOUT = Family(
    layers="encoder.layer",
    query="attention.self.query",
    key="attention.self.key",
    value="attention.self.value",
    attention_out="attention.output.dense",
    ffn_in="intermediate.dense",
    ffn_out="output.dense",
    heads_module="attention.self",
)

# DistilBERT: one attention module holds q_lin/k_lin/v_lin/out_lin, `n_heads` and `dim` (its width).
DISTILBERT = Family(
    layers="transformer.layer",
    query="attention.q_lin",
    key="attention.k_lin",
    value="attention.v_lin",
    attention_out="attention.out_lin",
    ffn_in="ffn.lin1",
    ffn_out="ffn.lin2",
    heads_module="attention",
    heads_attr="n_heads",
    width_attr="dim",
    num_layers_key="n_layers",
    num_heads_key="n_heads",
    hidden_key="dim",
    ffn_key="hidden_dim",
)

# MPNet: transformers' own prune_heads leaves the encoder's shared relative-position bias with every
# head, so a pruned layer breaks; compress selects the kept heads' bias rows in a pre-hook instead.
MPNET = Family(
    layers="encoder.layer",
    query="attention.attn.q",
    key="attention.attn.k",
    value="attention.attn.v",
    attention_out="attention.attn.o",
    ffn_in="intermediate.dense",
    ffn_out="output.dense",
    heads_module="attention.attn",
    native_pruned_heads=False,
    position_bias_heads=True,
)

# DeBERTa-v2/v3: relative-position projections (when not sharing q/k) are per-head row blocks too;
# transformers' `_prune_heads` raises here, so kept heads are recorded for the compress loader.
DEBERTA_V2 = Family(
    layers="encoder.layer",
    query="attention.self.query_proj",
    key="attention.self.key_proj",
    value="attention.self.value_proj",
    attention_out="attention.output.dense",
    ffn_in="intermediate.dense",
    ffn_out="output.dense",
    heads_module="attention.self",
    head_projections=("attention.self.pos_key_proj", "attention.self.pos_query_proj"),
    native_pruned_heads=False,
)

# ALBERT: one shared layer (per group) runs num_hidden_layers times, so the prunable layers are the
# distinct ones: cutting a head there cuts it at every depth. transformers' `_prune_heads` indexes
# these flattened distinct layers, so `config.pruned_heads` reloads with plain from_pretrained.
ALBERT = Family(
    layers="encoder.albert_layer_groups",
    inner="albert_layers",
    query="attention.query",
    key="attention.key",
    value="attention.value",
    attention_out="attention.dense",
    ffn_in="ffn",
    ffn_out="ffn_output",
    heads_module="attention",
    group_keys=("num_hidden_groups", "inner_group_num"),
)

# ModernBERT: fused Wqkv (rows [q | k | v]) and a gated FFN (Wi rows [input | gate]); no head pruning
# in transformers at all, so kept heads are recorded for the compress loader.
MODERNBERT = Family(
    layers="layers",
    query="attn.Wqkv",
    key="",
    value="",
    attention_out="attn.Wo",
    ffn_in="mlp.Wi",
    ffn_out="mlp.Wo",
    heads_module="attn",
    heads_attr="num_heads",
    head_size_attr="head_dim",
    fused_qkv=True,
    ffn_gated=True,
    native_pruned_heads=False,
)

# model_type -> layout. BERT's module layout is shared by RoBERTa, XLM-R, ELECTRA and CamemBERT.
FAMILIES: dict[str, Family] = {
    "bert": BERT_LAYOUT,
    "roberta": BERT_LAYOUT,
    "xlm-roberta": BERT_LAYOUT,
    "electra": BERT_LAYOUT,
    "camembert": BERT_LAYOUT,
    "distilbert": DISTILBERT,
    "mpnet": MPNET,
    "deberta-v2": DEBERTA_V2,
    "albert": ALBERT,
    "modernbert": MODERNBERT,
}


def prunable_family(model_type: str) -> Family | None:
    """The family's entry, or None when pruning does not know it."""
    return FAMILIES.get(model_type)


def distinct_layers(config: dict) -> int:
    """How many layers own their weights: all of them, or ALBERT's groups x inner layers."""
    family = FAMILIES[config["model_type"]]
    if not family.group_keys:
        return int(config[family.num_layers_key])
    count = 1
    for key in family.group_keys:
        count *= int(config.get(key, 1))  # transformers' default is 1 group of 1
    return count


def layers_and_heads(config: dict) -> tuple[int, int]:
    """(prunable layers, heads per layer) from a config.json of a known family: the layers that
    own weights, since those are what head pruning counts (ALBERT shares one across depth)."""
    family = FAMILIES[config["model_type"]]
    return distinct_layers(config), int(config[family.num_heads_key])


def family_of(model) -> Family:
    """The model's entry in the family table; ValueError naming it when pruning does not know it."""
    family = FAMILIES.get(model.config.model_type)
    if family is None:
        raise ValueError(unsupported(model.config.model_type))
    return family


def attr_path(root, path: str):
    """The module at a dotted path (the table's addresses)."""
    for name in path.split("."):
        root = getattr(root, name)
    return root


def has_path(root, path: str) -> bool:
    """Whether a layer has an optional module (DeBERTa's position projections)."""
    try:
        attr_path(root, path)
    except AttributeError:
        return False
    return True


def set_path(root, path: str, value) -> None:
    """Replace the module at a dotted path (a sliced Linear in place of the old one)."""
    parent, _, name = path.rpartition(".")
    setattr(attr_path(root, parent) if parent else root, name, value)


def layers(model) -> list:
    """The layers that own their weights, in order (ALBERT: its shared layers, not their uses)."""
    family = family_of(model)
    top = list(attr_path(model.base_model, family.layers))
    return [layer for group in top for layer in attr_path(group, family.inner)] if family.inner else top


def head_counts(model) -> list[int]:
    """Heads each layer has now."""
    family = family_of(model)
    return [getattr(attr_path(layer, family.heads_module), family.heads_attr) for layer in layers(model)]


def ffn_sizes(model) -> list[int]:
    """FFN neurons each layer has now (the FFN output projection's input width)."""
    family = family_of(model)
    return [attr_path(layer, family.ffn_out).in_features for layer in layers(model)]


def head_size(layer, family: Family) -> int:
    """Width of one head: unchanged by pruning, it fixes which rows a head owns."""
    return int(getattr(attr_path(layer, family.heads_module), family.head_size_attr))


class KeptHeadsBias:
    """Forward pre-hook for MPNet's self-attention: the encoder computes one relative-position bias
    with every original head and hands it to each layer (4th argument); a pruned layer takes only
    its kept heads' rows. A class, not a closure, so a hooked model still pickles (multi-process)."""

    def __init__(self, kept: list[int]):
        self.kept = list(kept)

    def __call__(self, _module, args, kwargs):
        if len(args) > 3 and args[3] is not None:
            args = (*args[:3], args[3][:, self.kept], *args[4:])
        elif kwargs.get("position_bias") is not None:
            kwargs = {**kwargs, "position_bias": kwargs["position_bias"][:, self.kept]}
        return args, kwargs


def hook_position_bias(layer, family: Family, kept: list[int]) -> None:
    att = attr_path(layer, family.heads_module)
    for key, hook in list(att._forward_pre_hooks.items()):
        if isinstance(hook, KeptHeadsBias):
            del att._forward_pre_hooks[key]
            att._forward_pre_hooks_with_kwargs.pop(key, None)
    att.register_forward_pre_hook(KeptHeadsBias(kept), with_kwargs=True)


def kept_heads(model) -> list[list[int]]:
    """The original indices of the heads each layer still has, from what the config records."""
    family = family_of(model)
    total = int(getattr(model.config, family.num_heads_key))
    n_layers = len(layers(model))
    if family.native_pruned_heads:
        pruned = model.config.pruned_heads or {}
        return [[h for h in range(total) if h not in set(pruned.get(i, []))] for i in range(n_layers)]
    recorded = getattr(model.config, "compress_kept_heads", None)
    return [list(k) for k in recorded] if recorded else [list(range(total)) for _ in range(n_layers)]


def relative_position_macs(att, s: int, inner: int, d: int) -> int:
    """DeBERTa's disentangled attention: per position type (c2p, p2c) a projection of the 2k relative
    embeddings and a (s x 2k) score matmul per head, both in proportion to the kept heads."""
    if not getattr(att, "relative_attention", False):
        return 0
    span = 2 * att.pos_ebd_size
    return len([t for t in att.pos_att_type if t in ("c2p", "p2c")]) * (span * d * inner + s * span * inner)


def plan_shape(model) -> dict:
    """The shape `fraction_for_macs` plans on, read from the model (not config keys, which differ)."""
    family = family_of(model)
    return {
        "n_layers": len(layers(model)),
        "n_heads": head_counts(model)[0],
        "hidden": int(getattr(model.config, family.hidden_key)),
        "ffn": ffn_sizes(model)[0],
        "ffn_matrices": 3 if family.ffn_gated else 2,
    }


def unsupported(model_type: str) -> str:
    """The one line `compress validate` gives for [prune] on a family it does not know."""
    known = ", ".join(sorted(FAMILIES))
    return (
        f"structured pruning does not support the '{model_type}' family yet (supported: {known}); "
        "remove [prune] to run the other stages on this model"
    )
