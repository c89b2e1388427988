"""The Pulumi components of the receipt compaction pipeline (and, in ``lambdas/``, its two
Lambda entry points)."""

from chromadb_compaction.pipeline import PipelineConfig, ReceiptCompactionPipeline

__all__ = ["PipelineConfig", "ReceiptCompactionPipeline"]
