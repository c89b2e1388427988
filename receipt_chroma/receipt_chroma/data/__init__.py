"""ChromaDB access."""

from receipt_chroma.data.chroma_client import ChromaClient

__all__ = ["ChromaClient"]
