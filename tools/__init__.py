"""Plain typed functions, one module per specialist. No MCP, no Flyte, no LLM imports here."""
