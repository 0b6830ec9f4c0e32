"""The reference PayScope API's own tests: the fixture proven against its contract, beside its code."""
