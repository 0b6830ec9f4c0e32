"""PayScope operator: provisions and audits PayScope's data layer on Kubernetes."""

__version__ = "0.1.0"
