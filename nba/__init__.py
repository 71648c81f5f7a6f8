"""The ``nba`` command's root: it mounts each layer's commands and reports errors once."""
