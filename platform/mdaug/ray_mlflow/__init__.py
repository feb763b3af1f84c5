"""The Ray and MLflow layer over the plain-PyTorch library: Ray Train / Ray Data / Ray Tune jobs, MLflow runs,
datasets and models."""
