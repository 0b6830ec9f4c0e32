"""Plan, provision, audit and build status: no kopf, no drivers, no Kubernetes client."""
