"""`mdaug-pipeline` from the checkout (e.g. under `ray job submit --working-dir .`): mdaug/commands/pipeline.py.
`--help` says more."""

from mdaug.commands.pipeline import main

if __name__ == "__main__":
    main()
