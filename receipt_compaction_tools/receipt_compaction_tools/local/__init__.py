"""The pipeline run locally: resources on a moto server or any AWS endpoint, and the two
real Lambda handlers driven exactly as their event source mappings would drive them."""
