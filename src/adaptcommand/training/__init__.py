"""Training stage: per-user, unified and hybrid LoRA adapters."""
