"""``python -m edgeseg`` runs the CLI (what ``torchrun -m edgeseg train ...`` starts per process)."""

from edgeseg.cli.main import main

if __name__ == "__main__":
    main()
