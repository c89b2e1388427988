"""The two Lambda entry points. Each module is also deployed on its own (the zip holds
``stream_processor.py``, the image ``enhanced_compaction_handler.py``), so neither imports
anything from this package."""
