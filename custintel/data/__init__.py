"""Raw data: the synthetic generator, table schemas and DVC versioning."""
