"""Models stage: loading base models (hub, local, embedded, tiny-random), prompting, generation."""
