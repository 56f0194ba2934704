"""Dataset schemas: one module per dataset, each defining ``DATASET``."""
