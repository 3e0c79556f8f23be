"""The model side: loading and saving checkpoints (the one module that talks to transformers), the
packaged models, ONNX export (the one module that talks to optimum), structured pruning surgery,
the training loop and data-parallel launch."""
