"""The seed's own writer shape: an OpenAI Agents SDK `Agent` (structured output `ReportData`) run by
Restate's `DurableRunner`, with a durable `save_report` tool, served by hypercorn as `WriterAgentRestate`.

Run it with `python targets/agents_writer/service.py`; configured by environment only (`settings.py`).
"""
