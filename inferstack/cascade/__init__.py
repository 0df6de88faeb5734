"""Doing less work per answer: cascades that answer easy rows with a light model and escalate only the others
(`runner`), latency budgets (`budget`), and a circuit breaker with fallbacks around endpoint calls (`breaker`,
`guard`). Manifest tables in `config`."""
