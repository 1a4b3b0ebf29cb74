"""Components: one module per real thing the tool starts or talks to (the Restate server native, in
Docker or as a cluster; the writer; the model; the LLM tap; the stub model; the Docker engine). A component
knows its own process and endpoints, never a drill, the kit, the reports or the Stack that composes it."""
