"""Clients learn nothing internal: AWS error text (roles, accounts, resources), exception messages and resolved
addresses stay in the logs; answers and job errors carry the kind of failure only."""

from __future__ import annotations

from botocore.exceptions import ClientError

from inferstack.api.errors import to_problem
from inferstack.heavy.endpoint import _from_client_error
from inferstack.jobs.exceptions import TransientJobError, public_reason

ROLE = "arn:aws:sts::123456789012:assumed-role/inferstack-WorkerIrisRole-AbC/inferstack-WorkerIris"
ACCESS_DENIED = ClientError({"Error": {"Code": "AccessDeniedException", "Message": f"User: {ROLE} is not authorized to "
                                      "perform: sagemaker:InvokeEndpoint on resource: arn:aws:sagemaker:us-east-1:"
                                      "123456789012:endpoint/inferstack-example-minilm"}}, "InvokeEndpoint")


def test_an_aws_error_is_told_by_its_code_only() -> None:
    assert public_reason(ACCESS_DENIED) == "AWS error AccessDeniedException"
    assert public_reason(RuntimeError("/var/task/models/secret.onnx: bad magic")) == "RuntimeError"
    assert public_reason(TransientJobError("the model iris did not come up")) == "the model iris did not come up"


def test_the_endpoints_aws_errors_reach_no_client() -> None:
    problem = to_problem(_from_client_error(ACCESS_DENIED))
    assert problem.status == 502 and "AccessDeniedException" in problem.detail
    assert "123456789012" not in problem.body().decode() and "arn:" not in problem.body().decode()


def test_sagemakers_text_of_a_refused_request_reaches_no_client() -> None:
    error = ClientError({"Error": {"Code": "ModelError", "Message": "Received client error (400) from primary with "
                                   "message \"bad\". See https://us-east-1.console.aws.amazon.com/cloudwatch/home?"
                                   "region=us-east-1#logEventViewer:group=/aws/sagemaker/Endpoints/x in account "
                                   "123456789012 for more information."},
                         "OriginalStatusCode": 400, "OriginalMessage": "not json"}, "InvokeEndpoint")
    problem = to_problem(_from_client_error(error))
    assert problem.status == 400 and "123456789012" not in problem.body().decode()
