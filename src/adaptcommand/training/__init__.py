"""Training stage: LoRA adapters per user (`per-user`), one for all users (`unified`), per user
on top of the unified one (`hybrid`), one per behaviour cluster (`cluster`), PEFT prefix tuning
of any of these (`method=prefix`), and merged adapters for new users without training
(`training.merging`, `adaptcommand merge`)."""
