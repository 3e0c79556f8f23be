"""Data: reading and checking the recipe's splits (`splits`), and turning rows into padded batches
of token ids (`batches`)."""
