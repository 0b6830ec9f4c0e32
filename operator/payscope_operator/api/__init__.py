"""The PayScopeDeployment API: pydantic models of spec and status (the single source of
truth), condition types and reasons, and the CRD generated from them. No I/O, no clients."""
