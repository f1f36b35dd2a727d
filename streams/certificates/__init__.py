"""Lead certificates (R23): the verifier contract, a TrustedForm-style verifier, and the
service that turns claimed certificates on the consent topic into verification results."""
