"""Lead certificates (R23): the verifier contract, the TrustedForm and Jornaya LeadiD
verifiers (chosen by the certificate's shape), and the service that turns claimed
certificates on the consent topic into verification results, with its /metrics."""
