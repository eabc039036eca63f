"""spikeloom conformance kit (see docs)."""
