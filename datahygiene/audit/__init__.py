"""Evidence a third party can check: the exclusion log, its signed checkpoints, the
attestation and the dataset-card fragment (docs/evidence-formats.md).

Nothing here ever sees a list value or a matched row's URL: the log holds keyed
commitments to row keys, decisions, signal types and list identities only.
"""
