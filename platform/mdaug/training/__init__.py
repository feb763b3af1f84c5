"""Lightning modules for the VA-VAE and the DiT (no ray, no mlflow: they run on a plain GPU box)."""
