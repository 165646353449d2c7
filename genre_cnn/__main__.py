"""``python -m genre_cnn`` runs the command line."""

from .cli import main

main()
