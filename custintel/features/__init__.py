"""Point-in-time customer features and labels: the one implementation used by training and serving."""
