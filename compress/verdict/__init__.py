"""The verdict's arithmetic: gates, statistics, metrics and regression across runs. Pure: numbers and
records in, records out; nothing here reads files, runs models or prints."""
