"""Run directories on disk: cells.jsonl, results.json and metadata.json written whole or appended durably, and
read back checked against the kind registry, older schema versions upgraded."""
