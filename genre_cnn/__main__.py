"""``python -m genre_cnn`` runs the command line."""

from genre_cnn.cli import main

main()
