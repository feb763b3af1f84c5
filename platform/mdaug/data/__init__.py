"""Data layer: validate spectrogram folders, split them into a manifest, load images."""
