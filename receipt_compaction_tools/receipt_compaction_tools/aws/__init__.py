"""Local AWS for tools and tests: a moto server, and a reader of a table's real stream."""
