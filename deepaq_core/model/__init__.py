"""Models: backbones (MERT on stock transformers, compact built-in), LoRA, embedding head, bundles."""
