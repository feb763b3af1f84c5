"""`mdaug-sweep` from the checkout (e.g. under `ray job submit --working-dir .`): mdaug/commands/sweep.py.
`--help` says more."""

from mdaug.commands.sweep import main

if __name__ == "__main__":
    main()
