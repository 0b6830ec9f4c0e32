"""S3: the declared buckets of one endpoint (AWS, MinIO, SeaweedFS).

``model`` (observed buckets, normalised documents, actions) ← ``plan`` (pure) ←
``provisioner`` (observe, apply, teardown); ``client`` builds the boto3 client and
runs each call off the event loop; ``evidence`` reduces an observation to audit facts.
"""

from payscope_operator.backends.s3 import client, evidence, model, plan, provisioner

__all__ = ["client", "evidence", "model", "plan", "provisioner"]
