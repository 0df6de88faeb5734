"""The heavy tier: the SageMaker container's server with dynamic batching, and the client side that calls a
SageMaker endpoint (the predict proxy function and heavy-model workers)."""
