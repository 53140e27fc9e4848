"""Schedule sources: one module per format, each producing a Draft that one builder validates."""
