"""Running a suite's cells on a Ray cluster: which nodes there are (`nodes`), which node may run which cell
(`placement`), and the loop that sends cells to nodes and records what comes back (`executor`). A cell runs on
its node through the same `runner.run_cell` as a local run (`node_task`)."""
