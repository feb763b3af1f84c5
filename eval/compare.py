"""`mdaug-compare` from the checkout (e.g. under `ray job submit --working-dir .`): mdaug/commands/compare.py.
`--help` says more."""

from mdaug.commands.compare import main

if __name__ == "__main__":
    main()
