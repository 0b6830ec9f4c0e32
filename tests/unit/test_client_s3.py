"""The S3 client maps S3 error answers to the operator's errors, never echoing server text.

Pure: ClientErrors are built in the shape botocore parses from SeaweedFS and AWS answers.
"""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from payscope_operator import errors
from payscope_operator.backends import s3

B = "payscope-ingest"


def client_error(code: str, http_status: int, operation: str, message: str = "") -> ClientError:
    """A ClientError shaped as botocore parses an S3 error answer (see SeaweedFS's below)."""
    response: Any = {
        "Error": {"Code": code, "Message": message, "BucketName": B, "Resource": f"/{B}"},
        "ResponseMetadata": {"HTTPStatusCode": http_status, "HTTPHeaders": {}, "RetryAttempts": 0},
    }
    return ClientError(response, operation)


SEAWEEDFS_ALREADY_EXISTS = (
    "The requested bucket name is not available. The bucket name can not be an existing collection, and the "
    "bucket namespace is shared by all users of the system. Please select a different name and try again."
)


@pytest.mark.parametrize(
    ("code", "http_status", "operation", "error_type", "reason"),
    [
        ("BucketAlreadyExists", 409, "CreateBucket", errors.SpecUnsatisfiable, "BucketOwnedByAnotherAccount"),
        ("AccessDenied", 403, "PutBucketPolicy", errors.PermissionDenied, "PermissionDenied"),
        ("InvalidAccessKeyId", 403, "ListBuckets", errors.PermissionDenied, "PermissionDenied"),
        ("SignatureDoesNotMatch", 403, "ListBuckets", errors.PermissionDenied, "PermissionDenied"),
        ("SlowDown", 503, "PutBucketVersioning", errors.DependencyUnavailable, "DependencyUnavailable"),
        ("InternalError", 500, "GetBucketPolicy", errors.DependencyUnavailable, "DependencyUnavailable"),
        ("502", 502, "HeadBucket", errors.DependencyUnavailable, "DependencyUnavailable"),
        ("MalformedXML", 400, "PutBucketLifecycleConfiguration", errors.SpecUnsatisfiable, "ProvisioningFailed"),
        ("InvalidBucketName", 400, "CreateBucket", errors.SpecUnsatisfiable, "ProvisioningFailed"),
    ],
)
def test_s3_error_answers_map_to_the_operators_errors(
    code: str, http_status: int, operation: str, error_type: type[errors.PayScopeError], reason: str
) -> None:
    secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
    error = client_error(code, http_status, operation, message=SEAWEEDFS_ALREADY_EXISTS + secret)
    translated = s3.client.translate_error(error, operation=operation, bucket=B, endpoint="http://127.0.0.1:9000")
    assert type(translated) is error_type
    assert translated.reason == reason
    assert B in translated.message
    assert secret not in translated.message  # server text is never echoed
