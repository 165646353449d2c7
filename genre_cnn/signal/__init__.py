"""One song's audio: decoding, chunking, cleaning, log-mel spectrograms and handcrafted descriptors."""
