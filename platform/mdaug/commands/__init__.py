"""The platform's commands (console scripts mdaug-pipeline, mdaug-train, mdaug-generate, mdaug-sweep, mdaug-evaluate,
mdaug-compare; the checkout's jobs/, tuning/ and eval/ scripts call the same `main`): parse, configure, call. Each
answers `--help` and refuses bad settings before importing torch, Ray, MLflow or Lightning."""
