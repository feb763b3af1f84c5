"""Thin Ray Train / Ray Data / MLflow layer over the plain-PyTorch library."""
