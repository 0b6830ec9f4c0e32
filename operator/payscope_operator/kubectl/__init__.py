"""``kubectl payscope``: the kubectl plugin platform teams use to read and steer PayScopeDeployments.

``command`` parses the verbs and runs them against the cluster of the user's own
kubeconfig (through ``kube.resources``); ``status_view``, ``explain`` and
``edits`` are pure (a resource or a check in, text or a patch out), and the
report comes from ``audit.verdicts`` and its renderers, shared with the
standalone CLI. Installed as the console script ``kubectl-payscope``, which
kubectl finds on the PATH (krew manifest: ``plugins/krew/payscope.yaml``).
"""
