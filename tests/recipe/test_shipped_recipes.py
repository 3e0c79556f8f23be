"""Every recipe in recipes/ loads and validates as shipped, with the stages its comment promises."""

import pytest

from compress.recipe.load import load_recipe
from compress.recipe.stages import enabled_stages
from tests.conftest import REPO

SHIPPED = sorted((REPO / "recipes").glob("*.toml"))


def test_recipes_are_shipped():
    assert len(SHIPPED) >= 8


@pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_shipped_recipe_validates(path):
    loaded = load_recipe(path)
    assert loaded.name == path.stem and loaded.recipe.targets
    assert enabled_stages(loaded.recipe), f"{path.name} runs no stage"
    first = path.read_text().splitlines()[0]
    assert first.startswith("# compress run recipes/"), f"{path.name}: the first line gives the command"
