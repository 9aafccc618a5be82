"""Rule segments: an AND/OR tree of conditions over aggregates, attributes, scores, value and stage, kept current."""
