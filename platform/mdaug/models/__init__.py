"""Generative models as plain PyTorch: VA-VAE (LDM AutoencoderKL layout) and LightningDiT.
Nothing here imports ray or mlflow."""
