"""One module per external system: observe, apply, gather evidence. Nothing here knows kopf."""
