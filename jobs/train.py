"""`mdaug-train` from the checkout (e.g. under `ray job submit --working-dir .`): mdaug/commands/train.py.
`--help` says more."""

from mdaug.commands.train import main

if __name__ == "__main__":
    main()
