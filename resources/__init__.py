"""Package data: the built-in model bundle, demo audio and icons."""
