"""`mdaug-evaluate` from the checkout (e.g. under `ray job submit --working-dir .`): mdaug/commands/evaluate.py.
`--help` says more."""

from mdaug.commands.evaluate import main

if __name__ == "__main__":
    main()
