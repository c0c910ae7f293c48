"""Training stage: one recipe per strategy (`recipes.py`: per-user, unified, hybrid, cluster)
over the shared steps of a run (`runner.py`) and one adapter-training loop (`engine.py`) for
both adapter methods: LoRA (`multi_lora.py`, many adapters per step) and prefix tuning
(`prefix.py`, one per step). What a personalization arm adds to training lives in `arms/`
(behaviour clusters, distilled examples; merged adapters for new users are made without
training by `arms.merged`, `adaptcommand merge`)."""
