"""What every part of the pipeline shares: artifacts, the stage contract, the typed manifest records,
the content-keyed cache, hashing, errors, progress output and the environment description."""
