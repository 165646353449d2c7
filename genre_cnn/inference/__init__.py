"""Saved models at work: one classifier per model kind, runners, timelines, embeddings, exports."""
