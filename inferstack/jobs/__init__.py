"""The asynchronous tier: job submission, storage, the worker, webhooks and the SSRF guard.

Nothing here imports numpy or onnxruntime at module level, so the API function can submit and read jobs;
only `inferstack.jobs.worker` runs models.
"""
