"""Data stage: the EdgeWisePersona schema, cleaning and splitting, and the synthetic generator."""
