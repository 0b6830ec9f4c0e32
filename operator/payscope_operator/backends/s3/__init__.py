"""S3: the declared buckets of one endpoint (AWS, MinIO, SeaweedFS)."""

from payscope_operator.backends.s3 import plan, provisioner

__all__ = ["plan", "provisioner"]
