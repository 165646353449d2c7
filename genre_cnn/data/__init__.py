"""Datasets on disk: tracks folders and metadata CSVs, splits, the chunked log-mel store, caches, shards."""
