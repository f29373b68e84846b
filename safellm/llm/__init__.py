"""The LLM layer: one chat-model interface, its adapters, prompts as data, note retrieval."""
