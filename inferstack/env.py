"""Every environment variable inferstack reads, in one place."""

#: Path of the catalog JSON (models, versions, signatures) bundled with every function.
CATALOG_PATH = "INFERSTACK_CATALOG"
#: The one model a predict function serves.
MODEL_NAME = "INFERSTACK_MODEL"
#: Directory the catalog's relative model paths are resolved against (default: the catalog's directory).
MODEL_ROOT = "INFERSTACK_MODEL_ROOT"
#: Lambda sets this; used to size onnxruntime's thread pool to the function's vCPUs.
LAMBDA_MEMORY_MB = "AWS_LAMBDA_FUNCTION_MEMORY_SIZE"
#: Override the number of onnxruntime intra-op threads.
INTRA_OP_THREADS = "INFERSTACK_INTRA_OP_THREADS"
#: Largest request body a function accepts (bytes); larger ones get 413.
MAX_BODY_BYTES = "INFERSTACK_MAX_BODY_BYTES"

# jobs tier
JOBS_TABLE = "INFERSTACK_JOBS_TABLE"
JOBS_BUCKET = "INFERSTACK_JOBS_BUCKET"
#: JSON object: model name -> its job queue URL.
JOB_QUEUES = "INFERSTACK_JOB_QUEUES"
WEBHOOK_QUEUE = "INFERSTACK_WEBHOOK_QUEUE"
WEBHOOK_SECRET_ID = "INFERSTACK_WEBHOOK_SECRET_ID"
MAX_QUEUE_DEPTH = "INFERSTACK_MAX_QUEUE_DEPTH"
RESULT_TTL_DAYS = "INFERSTACK_RESULT_TTL_DAYS"
WEBHOOK_MAX_ATTEMPTS = "INFERSTACK_WEBHOOK_MAX_ATTEMPTS"
WEBHOOK_TIMEOUT_S = "INFERSTACK_WEBHOOK_TIMEOUT_S"
WEBHOOK_BACKOFF_S = "INFERSTACK_WEBHOOK_BACKOFF_S"
#: Only `inferstack dev --allow-loopback-webhooks` sets this: lets webhooks reach 127.0.0.0/8 over http.
ALLOW_LOOPBACK_WEBHOOKS = "INFERSTACK_ALLOW_LOOPBACK_WEBHOOKS"
#: `inferstack dev`: a JSON file listing the local stack's own ports, which loopback webhooks may never reach.
STACK_PORTS_FILE = "INFERSTACK_STACK_PORTS_FILE"

# heavy tier
#: The container server's event loop (`uvloop` or `asyncio`) and HTTP parser (`httptools` or `h11`); default:
#: asyncio's loop (uvloop serializes bursts: see inferstack.heavy.server) and httptools where installed.
HEAVY_LOOP = "INFERSTACK_LOOP"
HEAVY_HTTP = "INFERSTACK_HTTP"
#: Requests with larger bodies are tokenized and encoded in a worker thread instead of on the event loop.
HEAVY_OFFLOAD_BYTES = "INFERSTACK_OFFLOAD_BYTES"
#: The heavy container's model instances on a CPU (overrides `batching.instances`): a number, or "auto".
HEAVY_INSTANCES = "INFERSTACK_INSTANCES"
#: The largest JSON Lines body `/invocations` takes, in MB (a Batch Transform job's MaxPayloadInMB; default 6).
HEAVY_MAX_PAYLOAD_MB = "INFERSTACK_MAX_PAYLOAD_MB"
#: The SageMaker endpoint a heavy model's predict proxy and worker invoke.
ENDPOINT_NAME = "INFERSTACK_ENDPOINT"
#: A scale-to-zero heavy model's SageMaker inference component (sent with every InvokeEndpoint call).
INFERENCE_COMPONENT = "INFERSTACK_INFERENCE_COMPONENT"
#: Seconds a client is told to wait (`Retry-After`) while a heavy model scales out from zero.
SCALE_OUT_RETRY_AFTER_S = "INFERSTACK_SCALE_OUT_RETRY_AFTER_S"

# result cache, cascades, budgets
#: JSON `{"ttl_s", "max_entries", "shared"}`: the cache of the model or cascade the function serves.
CACHE = "INFERSTACK_CACHE"
#: The deployment's shared cache table (DynamoDB, TTL on `expires_at`).
CACHE_TABLE = "INFERSTACK_CACHE_TABLE"
#: JSON: the cascade a cascade function serves (`inferstack.cascade.config.CascadeRuntime`).
CASCADE = "INFERSTACK_CASCADE"
#: JSON: a heavy model's latency budget, circuit breaker and fallback (`inferstack.cascade.config.Guard`).
GUARD = "INFERSTACK_GUARD"
# bulk scoring (batches)
#: The stack's batch bucket (uploads, chunk plans, the Map's result files; default output location).
BATCH_BUCKET = "INFERSTACK_BATCH_BUCKET"
#: JSON object: model name -> the ARN of its batch state machine.
BATCH_STATE_MACHINES = "INFERSTACK_BATCH_STATE_MACHINES"
#: JSON lists of the buckets batches may read from / write to (the batch bucket is always both).
BATCH_INPUT_BUCKETS = "INFERSTACK_BATCH_INPUT_BUCKETS"
BATCH_OUTPUT_BUCKETS = "INFERSTACK_BATCH_OUTPUT_BUCKETS"
#: Default rows per chunk.
BATCH_ROWS_PER_CHUNK = "INFERSTACK_BATCH_ROWS_PER_CHUNK"
