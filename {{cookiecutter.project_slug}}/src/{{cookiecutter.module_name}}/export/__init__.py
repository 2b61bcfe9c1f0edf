"""Exports of the selected model (merged safetensors, GGUF with an Ollama Modelfile) and
their parity with the model eval scored."""
