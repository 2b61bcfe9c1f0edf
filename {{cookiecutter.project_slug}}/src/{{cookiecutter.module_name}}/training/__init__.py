"""Training: loading models, the TRL trainers (SFT, DPO), crash-safe checkpoints, loss
guards, the smoke run and the hardware/method advisor."""
