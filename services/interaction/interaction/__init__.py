"""interaction: customer intimacy — identity resolution, the 360° profile, touchpoints and partner ingestion."""
