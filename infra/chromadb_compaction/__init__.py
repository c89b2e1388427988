"""The Pulumi components of the receipt compaction pipeline (``pipeline.py`` and the modules
it composes) and, in ``lambdas/``, its two Lambda entry points. Importing the package
imports neither Pulumi nor a handler."""
