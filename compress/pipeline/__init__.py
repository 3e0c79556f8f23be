"""The pipeline: the runner's loop over the stage table (`runner`, `execute`), what a run reads and has
made (`state`), measuring artifacts (`assess`), the pure judge (`judge`), the run it is compared with
(`previous`) and the weight-noise test hook (`perturb`)."""
