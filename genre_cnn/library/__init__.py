"""A person's music library: read and normalise genre tags, write genres back safely (journal, undo)."""
