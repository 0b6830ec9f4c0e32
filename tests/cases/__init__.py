"""Tables of PayScopeDeployment specs shared by unit and integration tests."""
