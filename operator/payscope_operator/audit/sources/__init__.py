"""Evidence sources, one module per external system, each gathered at most once per pass."""
