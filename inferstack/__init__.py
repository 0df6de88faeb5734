"""inferstack: serve ONNX models on AWS Lambda, SQS and SageMaker, and the same topology locally."""

__version__ = "0.1.0"
