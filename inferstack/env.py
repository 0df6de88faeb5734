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
