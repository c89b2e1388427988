"""Pulumi entry point: the receipt compaction pipeline for this stack."""

import pulumi

from chromadb_compaction.pipeline import PipelineConfig, ReceiptCompactionPipeline

pipeline = ReceiptCompactionPipeline(pulumi.get_stack(), PipelineConfig.from_stack())
for key, value in pipeline.outputs.items():
    pulumi.export(key, value)
