"""CSV exports of a segment run as jobs: progress to poll, the finished file kept in Postgres to download."""
