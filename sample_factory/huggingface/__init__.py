"""Share experiments on the Hugging Face Hub (`huggingface_hub` is an optional dependency)."""
