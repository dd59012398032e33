"""The presets: one YAML file per named configuration (``torchnas presets`` lists them)."""
