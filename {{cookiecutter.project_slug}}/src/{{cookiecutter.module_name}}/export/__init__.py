"""Exports of the selected model: GGUF, Ollama, the Hub, a local server."""
