print("taskgraph")
