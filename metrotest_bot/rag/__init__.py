"""Placeholder: the RAG helper replaces this module (get_engine)."""
