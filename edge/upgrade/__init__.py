"""Model upgrades from signed bundles: verify, stage, test, activate, roll back; audit log.

Vendor side: `bundle` (build and sign), `minisign` (keys and signatures). Device side:
`engine.Upgrader` (the steps), `archive` (reading a bundle safely), `model_store` (installed
models and the active pointer), `gate` (the regression suite), `health` (the check after
activation), `manager` (the running service's side), `audit` (the hash-chained log).
"""
