"""`python -m textclf` runs the CLI."""

from textclf.cli import main

main()
