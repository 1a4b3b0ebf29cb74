"""WriterAgentRestate: an LLM report writer served as a durable Restate service."""
