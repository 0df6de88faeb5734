"""Result cache: answers keyed by the model's version and a canonical hash of the validated inputs, held in an
in-memory LRU per execution environment and, for heavy models and cascades, in a shared DynamoDB table with TTL
(where a hit saves an endpoint call). HTTP semantics in `inferstack.cache.http`: ETag, If-None-Match -> 304,
Cache-Control, `x-cache: hit|miss`.

Modules: `config` (the manifest's table, pydantic), `settings` (what a function reads from its environment,
without pydantic: the light predict function's cold path imports neither it nor FastAPI), `key`, `store`,
`http`, `wiring`."""
