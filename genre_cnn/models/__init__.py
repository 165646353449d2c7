"""The networks: the CNN and its layers, the musicnn backbone, and where model folders live."""
