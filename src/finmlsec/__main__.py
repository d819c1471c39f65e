"""``python -m finmlsec ...``: the same command line as the ``finmlsec`` script (useful where
the script is not on PATH, e.g. a venv that is not activated)."""

from finmlsec.cli.main import main

if __name__ == "__main__":
    main()
