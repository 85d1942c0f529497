"""`python -m textclf` runs the CLI."""

from textclf.entry import main

main()
