"""`mdaug-generate` from the checkout (e.g. under `ray job submit --working-dir .`): mdaug/commands/generate.py.
`--help` says more."""

from mdaug.commands.generate import main

if __name__ == "__main__":
    main()
