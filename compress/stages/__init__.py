"""One leaf module per stage, each `run(ctx: StageContext[Spec]) -> StageResult` (see
compress.core.stage). Which stages exist, in what order and what they make is the stage table,
compress.recipe.stages; no stage imports another."""
