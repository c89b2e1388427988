"""Endpoints that fail the way networks do: receipt_dynamo.testing owns them (the lightest
package whose tests use them); named here for the tools, infra and the heavier packages'
tests."""

from receipt_dynamo.testing.endpoints import RefusedEndpoint, SilentEndpoint, TricklingEndpoint

__all__ = ["RefusedEndpoint", "SilentEndpoint", "TricklingEndpoint"]
