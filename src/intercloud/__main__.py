"""`python -m intercloud ...` runs the `intercloud` command."""

from intercloud.cli.main import main

if __name__ == "__main__":
    main()
