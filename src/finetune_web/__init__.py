"""finetune_web."""
