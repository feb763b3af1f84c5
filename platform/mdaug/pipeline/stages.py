"""The pipeline's stages in order (importing this imports nothing else: `--help` stays fast)."""

STAGES = ("simulate", "validate", "split", "classifier", "vae", "latents", "dit", "sweep", "generate", "evaluate",
          "report")
