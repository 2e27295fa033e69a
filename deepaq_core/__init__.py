"""DeePAQ core: headless perceptual audio quality scoring (no Qt, no audio devices).

Importing this package is cheap: torch, transformers and the models load lazily.
"""

__version__ = "0.1.0"
