"""The test Redis and S3 servers are real: a list round-trips; policies and versions hold."""

from __future__ import annotations

import json

import boto3
import httpx
import redis
from botocore.config import Config
from mypy_boto3_s3 import S3Client


def test_redis_list_length_round_trips(testenv: dict[str, str], redis_prefix: str) -> None:
    client = redis.Redis.from_url(testenv["PAYSCOPE_REDIS_URL"], socket_timeout=5)
    key = redis_prefix + "dlq"
    try:
        client.rpush(key, "a", "b", "c")
        assert client.llen(key) == 3
    finally:
        client.delete(key)
        client.close()


def _s3(env: dict[str, str]) -> S3Client:
    return boto3.client(
        "s3",
        endpoint_url=env["PAYSCOPE_S3_ENDPOINT"],
        aws_access_key_id=env["PAYSCOPE_S3_ACCESS_KEY"],
        aws_secret_access_key=env["PAYSCOPE_S3_SECRET_KEY"],
        region_name="us-east-1",
        config=Config(connect_timeout=5, read_timeout=10, retries={"max_attempts": 2}),
    )


def test_bucket_policy_refuses_anonymous_get(testenv: dict[str, str], bucket_name: str) -> None:
    s3 = _s3(testenv)
    s3.create_bucket(Bucket=bucket_name)
    s3.put_object(Bucket=bucket_name, Key="k", Body=b"secret")
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "DenyAnonymous",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "s3:GetObject",
                "Resource": f"arn:aws:s3:::{bucket_name}/*",
                "Condition": {"StringEquals": {"aws:PrincipalType": "Anonymous"}},
            }
        ],
    }
    s3.put_bucket_policy(Bucket=bucket_name, Policy=json.dumps(policy))
    anonymous = httpx.get(f"{testenv['PAYSCOPE_S3_ENDPOINT']}/{bucket_name}/k", timeout=10)
    assert anonymous.status_code == 403
    assert s3.get_object(Bucket=bucket_name, Key="k")["Body"].read() == b"secret"


def test_versioning_keeps_two_versions(testenv: dict[str, str], bucket_name: str) -> None:
    s3 = _s3(testenv)
    s3.create_bucket(Bucket=bucket_name)
    s3.put_bucket_versioning(Bucket=bucket_name, VersioningConfiguration={"Status": "Enabled"})
    s3.put_object(Bucket=bucket_name, Key="k", Body=b"one")
    s3.put_object(Bucket=bucket_name, Key="k", Body=b"two")
    versions = s3.list_object_versions(Bucket=bucket_name, Prefix="k")["Versions"]
    assert len(versions) == 2
    assert s3.get_bucket_versioning(Bucket=bucket_name)["Status"] == "Enabled"
