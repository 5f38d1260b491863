"""The history as a static site (`harness history publish`): pages, charts, feeds and the incremental writer."""
